//! `tessera import users FILE` and `tessera migration status|sunset`: the legacy password
//! migration, through the running server's admin socket or directly on the data folder,
//! with the same functions either way (`tessera_http::admin::migration`).
//!
//! The import streams its file: a line is read up to [`IMPORT_LINE_BYTES_MAX`] bytes and the
//! rest of a longer one is skipped unread into memory, so a gigabyte without a newline costs
//! no more memory than a short line.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use http::Method;
use tessera_http::admin::migration::{
    self as shared, IMPORT_BATCH_BYTES_MAX, IMPORT_BATCH_LINES_MAX, IMPORT_LINE_BYTES_MAX,
    ImportBatch, ImportLine, ImportOutcome, LineResult, MigrationStatus, ResetExport, SunsetBody,
};

use crate::Failure;
use crate::admin_client::AdminClient;
use crate::config::Config;
use crate::ops::CommandError;

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import accounts from a legacy password table: JSON lines with username, optional
    /// email, hash (raw or salted MD5, bcrypt, argon2, Django pbkdf2_sha256), salt and
    /// salt_position for a salted MD5, and last_login (Unix seconds). MD5s are wrapped in
    /// argon2id before they are stored. Exit status 1 when a line was refused.
    Users {
        /// The JSON-lines file.
        file: PathBuf,
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum MigrationCommand {
    /// Accounts by password scheme, the history per day, and when no legacy credential will
    /// be left at the recent rate.
    Status {
        #[arg(long)]
        data: Option<PathBuf>,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Retire the legacy credentials unused for longer than `migration.inactive_days`, and
    /// export one reset token per account as JSON lines for delivery by your own mail.
    Sunset {
        /// Who is doing this, logged.
        #[arg(long)]
        operator: String,
        /// Where the reset tokens go: a new file (owner-only), never overwritten. Standard
        /// output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

/// One line of the file as read: its text, or why it cannot be.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Text(String),
    TooLong,
    NotUtf8,
}

/// Reads lines of at most `max` bytes (without the newline) from `inner`, never holding
/// more than `max` bytes of one: a longer line is consumed and reported, unread.
struct BoundedLines<R> {
    inner: R,
    max: usize,
    number: u64,
    consumed: u64,
}

impl<R: BufRead> BoundedLines<R> {
    fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            max,
            number: 0,
            consumed: 0,
        }
    }

    /// The next line with its number (from 1), or `None` at the end.
    fn next_line(&mut self) -> std::io::Result<Option<(u64, Read)>> {
        let mut buf: Vec<u8> = Vec::new();
        let mut too_long = false;
        let mut any = false;
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                if !any {
                    return Ok(None);
                }
                break;
            }
            any = true;
            let newline = chunk.iter().position(|b| *b == b'\n');
            let text_end = newline.unwrap_or(chunk.len());
            let text = chunk.get(..text_end).unwrap_or_default();
            if !too_long {
                if buf.len() + text.len() > self.max {
                    too_long = true;
                    buf = Vec::new();
                } else {
                    buf.extend_from_slice(text);
                }
            }
            let used = newline.map_or(chunk.len(), |i| i + 1);
            self.inner.consume(used);
            self.consumed += used as u64;
            if newline.is_some() {
                break;
            }
        }
        self.number += 1;
        if too_long {
            return Ok(Some((self.number, Read::TooLong)));
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some((
            self.number,
            String::from_utf8(buf).map_or(Read::NotUtf8, Read::Text),
        )))
    }
}

/// Where the commands run: the running server's socket, or an engine of this process.
enum Target {
    Socket(AdminClient),
    Direct(tessera_storage::Engine),
}

fn data_config(config: &Config, data: Option<PathBuf>) -> Config {
    let mut config = config.clone();
    config.data = data.unwrap_or(config.data);
    config
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::new)
}

fn connect(config: &Config, runtime: &tokio::runtime::Runtime) -> Result<Target, Failure> {
    match runtime.block_on(crate::admin_client::connect(&config.data))? {
        Some(client) => Ok(Target::Socket(client)),
        None => Ok(Target::Direct(crate::serve::start_operator_engine(config)?)),
    }
}

/// `tessera import users FILE`.
pub fn import(config: &Config, cmd: ImportCommand) -> Result<ExitCode, Failure> {
    let ImportCommand::Users { file, data } = cmd;
    let config = data_config(config, data);
    let opened = std::fs::File::open(&file)
        .map_err(|e| Failure(format!("cannot open {}: {e}", file.display())))?;
    let size = opened.metadata().map(|m| m.len()).unwrap_or(0);
    let runtime = runtime()?;
    let mut target = connect(&config, &runtime)?;
    let bar = crate::replay::progress_bar(size, "importing (bytes)");
    let reader = std::io::BufReader::with_capacity(64 * 1024, opened);
    let mut lines = BoundedLines::new(reader, IMPORT_LINE_BYTES_MAX);
    let mut tally = Tally::default();
    let result = import_all(&mut lines, &mut target, &runtime, &mut tally, &bar);
    bar.finish_and_clear();
    if let Target::Direct(engine) = &target {
        engine.shutdown();
    }
    result?;
    println!(
        "imported {}, skipped {}, refused {} (of {} lines in {})",
        tally.imported,
        tally.skipped,
        tally.refused,
        lines.number,
        file.display()
    );
    Ok(if tally.refused > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Debug, Default)]
struct Tally {
    imported: u64,
    skipped: u64,
    refused: u64,
}

impl Tally {
    fn report(&mut self, r: &LineResult, bar: &indicatif::ProgressBar) {
        let what = match r.outcome {
            ImportOutcome::Imported => {
                self.imported += 1;
                return;
            }
            ImportOutcome::Skipped => {
                self.skipped += 1;
                "skipped"
            }
            ImportOutcome::Refused => {
                self.refused += 1;
                "refused"
            }
        };
        let who = r
            .username
            .as_deref()
            .map(|u| format!(" ({u})"))
            .unwrap_or_default();
        bar.suspend(|| {
            eprintln!(
                "line {}{who}: {what}: {}",
                r.line,
                r.reason.as_deref().unwrap_or("-")
            );
        });
    }
}

fn import_all<R: BufRead>(
    lines: &mut BoundedLines<R>,
    target: &mut Target,
    runtime: &tokio::runtime::Runtime,
    tally: &mut Tally,
    bar: &indicatif::ProgressBar,
) -> Result<(), Failure> {
    let mut batch: Vec<ImportLine> = Vec::new();
    let mut batch_bytes = 0;
    loop {
        let next = lines
            .next_line()
            .map_err(|e| Failure(format!("cannot read the import file: {e}")))?;
        let full = batch.len() >= IMPORT_BATCH_LINES_MAX
            || batch_bytes + IMPORT_LINE_BYTES_MAX + 64 > IMPORT_BATCH_BYTES_MAX;
        if (next.is_none() || full) && !batch.is_empty() {
            for r in send(target, runtime, std::mem::take(&mut batch))? {
                tally.report(&r, bar);
            }
            batch_bytes = 0;
            bar.set_position(lines.consumed);
        }
        let Some((line, read)) = next else {
            return Ok(());
        };
        let refused = |reason: &str| LineResult {
            line,
            username: None,
            outcome: ImportOutcome::Refused,
            reason: Some(reason.to_owned()),
        };
        match read {
            Read::Text(text) if text.trim().is_empty() => {}
            Read::Text(text) => {
                batch_bytes += text.len() + 64;
                batch.push(ImportLine { line, text });
            }
            Read::TooLong => tally.report(
                &refused(&format!(
                    "longer than {IMPORT_LINE_BYTES_MAX} bytes; skipped unread"
                )),
                bar,
            ),
            Read::NotUtf8 => tally.report(&refused("not UTF-8"), bar),
        }
    }
}

fn send(
    target: &mut Target,
    runtime: &tokio::runtime::Runtime,
    batch: Vec<ImportLine>,
) -> Result<Vec<LineResult>, Failure> {
    match target {
        Target::Socket(client) => runtime
            .block_on(client.call_within(
                Method::POST,
                "/admin/v1/import",
                Some(&ImportBatch { lines: batch }),
                // A batch hashes up to its number of lines with argon2 on the server.
                std::time::Duration::from_secs(600),
            ))
            .map_err(|e: CommandError| Failure::from(e)),
        Target::Direct(engine) => shared::import_lines(engine, batch, shared::import_workers())
            .map_err(|e| Failure(format!("the import stopped: {e}"))),
    }
}

/// `tessera migration status|sunset`.
pub fn run(config: &Config, cmd: MigrationCommand) -> Result<ExitCode, Failure> {
    match cmd {
        MigrationCommand::Status { data, json } => {
            let config = data_config(config, data);
            let runtime = runtime()?;
            let status = match connect(&config, &runtime)? {
                Target::Socket(mut client) => runtime
                    .block_on(client.call::<MigrationStatus>(
                        Method::GET,
                        "/admin/v1/migration",
                        None::<&()>,
                    ))
                    .map_err(Failure::from)?,
                Target::Direct(engine) => {
                    let status = shared::status(&engine).map_err(Failure::new);
                    engine.shutdown();
                    status?
                }
            };
            print_status(&status, json)?;
            Ok(ExitCode::SUCCESS)
        }
        MigrationCommand::Sunset {
            operator,
            out,
            data,
        } => {
            let config = data_config(config, data);
            // Created before anything is retired: tokens must have somewhere to go.
            let mut sink: Box<dyn Write> = match &out {
                Some(path) => Box::new(new_private_file(path)?),
                None => Box::new(std::io::stdout()),
            };
            let runtime = runtime()?;
            let exports: Vec<ResetExport> = match connect(&config, &runtime)? {
                Target::Socket(mut client) => runtime
                    .block_on(client.call(
                        Method::POST,
                        "/admin/v1/migration/sunset",
                        Some(&SunsetBody { operator }),
                    ))
                    .map_err(Failure::from)?,
                Target::Direct(engine) => {
                    let done = runtime
                        .block_on(shared::sunset(&engine, &operator))
                        .map_err(Failure::new);
                    engine.shutdown();
                    done?
                }
            };
            for e in &exports {
                let line = serde_json::to_string(e).map_err(Failure::new)?;
                writeln!(sink, "{line}").map_err(Failure::new)?;
            }
            sink.flush().map_err(Failure::new)?;
            eprintln!(
                "retired {} legacy credentials; {}",
                exports.len(),
                out.as_ref()
                    .map_or("reset tokens on standard output".into(), |p| format!(
                        "reset tokens in {}",
                        p.display()
                    ))
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A new file only its owner can read; an existing one is never overwritten.
fn new_private_file(path: &Path) -> Result<std::fs::File, Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Failure(format!("cannot create {}: {e}", path.display())))
}

fn print_status(s: &MigrationStatus, json: bool) -> Result<(), Failure> {
    if json {
        println!("{}", serde_json::to_string_pretty(s).map_err(Failure::new)?);
        return Ok(());
    }
    println!("argon2id          {}", s.current);
    for (scheme, n) in &s.legacy {
        println!("legacy {scheme:<11}{n}");
    }
    println!("retired           {}", s.retired);
    println!("legacy share      {:.2} %", s.legacy_share * 100.0);
    if !s.days.is_empty() {
        println!("day         imported  migrated  retired");
        for d in &s.days {
            println!(
                "{}  {:<9} {:<9} {}",
                d.day, d.imported, d.migrated, d.retired
            );
        }
    }
    println!(
        "rate              {:.2} migrated per day (last {} days)",
        s.rate_per_day,
        shared::RATE_WINDOW_DAYS
    );
    match &s.zero_at {
        Some(t) => println!("no legacy left    {t} at that rate"),
        None => println!("no legacy left    never at that rate"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], max: usize) -> Vec<(u64, Read)> {
        let mut lines = BoundedLines::new(std::io::Cursor::new(input.to_vec()), max);
        std::iter::from_fn(|| lines.next_line().expect("in memory")).collect()
    }

    #[test]
    fn lines_are_bounded_numbered_and_checked() {
        let got = all(b"a\r\n\xff\xfe\nxxxxxxxxxx\nbb", 4);
        assert_eq!(
            got,
            vec![
                (1, Read::Text("a".into())),
                (2, Read::NotUtf8),
                (3, Read::TooLong),
                (4, Read::Text("bb".into())),
            ]
        );
        assert!(all(b"", 4).is_empty());
    }

    /// A reader that yields `len` bytes of 'x' in small chunks, then one newline and a short
    /// line, without ever holding more than one chunk.
    struct Endless {
        left: u64,
        chunk: [u8; 4096],
        tail: &'static [u8],
    }

    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                let n = self.tail.len().min(buf.len());
                buf[..n].copy_from_slice(&self.tail[..n]);
                self.tail = &self.tail[n..];
                return Ok(n);
            }
            let n = (self.left.min(self.chunk.len() as u64) as usize).min(buf.len());
            buf[..n].copy_from_slice(&self.chunk[..n]);
            self.left -= n as u64;
            Ok(n)
        }
    }

    #[test]
    fn a_gigabyte_line_is_skipped_in_bounded_memory() {
        let reader = Endless {
            left: 1 << 30,
            chunk: [b'x'; 4096],
            tail: b"\n{\"ok\":1}\n",
        };
        let mut lines =
            BoundedLines::new(std::io::BufReader::with_capacity(64 * 1024, reader), 8192);
        assert_eq!(lines.next_line().expect("reads"), Some((1, Read::TooLong)));
        assert_eq!(
            lines.next_line().expect("reads"),
            Some((2, Read::Text("{\"ok\":1}".into())))
        );
        assert_eq!(lines.next_line().expect("reads"), None);
    }
}
