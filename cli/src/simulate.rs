//! `tessera simulate`: the deterministic attack simulator from the command line.

use std::process::ExitCode;

use tessera_core::policy::Argon2Params;
use tessera_simulator::{Options, report};

use crate::Failure;

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The seed; without it one is drawn and printed first.
    #[arg(long)]
    seed: Option<u64>,
    /// Run this many seeds, from --seed on, and summarise.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// A scenario name, or `all` (repeatable).
    #[arg(long = "scenario", default_value = "all")]
    scenarios: Vec<String>,
    /// Steps of the attack phase.
    #[arg(long, default_value_t = 200)]
    steps: u64,
    /// One JSON report per seed instead of text.
    #[arg(long)]
    json: bool,
    /// Hash passwords at the configured (real) argon2 cost instead of a cheap one.
    #[arg(long)]
    real_argon2: bool,
    /// Keep the run's event log in this new folder (one subfolder per seed with --seeds),
    /// to read it with `tessera replay --data DIR`.
    #[arg(long)]
    keep: Option<std::path::PathBuf>,
    /// Keep the log in this empty PostgreSQL database (postgres://user@host:port/db)
    /// instead of sled; one seed at a time.
    #[arg(long, conflicts_with = "seeds")]
    postgres: Option<String>,
}

pub fn run(config: &crate::config::Config, args: SimulateArgs) -> Result<ExitCode, Failure> {
    let first = match args.seed {
        Some(s) => s,
        None => {
            let mut rng = tessera_http::system::os_rng();
            let seed = rand_core::Rng::next_u64(&mut rng);
            eprintln!("seed: {seed}");
            seed
        }
    };
    let scenarios: Vec<String> = args
        .scenarios
        .iter()
        .filter(|s| s.as_str() != "all")
        .cloned()
        .collect();
    let argon2 = if args.real_argon2 {
        config.policy.argon2
    } else {
        Argon2Params::INSECURE_FAST
    };
    let mut failures = Vec::new();
    for seed in first..first.saturating_add(args.seeds) {
        let options = Options {
            seed,
            scenarios: scenarios.clone(),
            steps: args.steps,
            argon2,
            keep: args.keep.as_ref().map(|k| {
                if args.seeds == 1 {
                    k.clone()
                } else {
                    k.join(seed.to_string())
                }
            }),
            postgres: args.postgres.clone(),
        };
        match tessera_simulator::run(&options) {
            Ok(r) if args.seeds == 1 => {
                if args.json {
                    println!("{}", serde_json::to_string(&r).map_err(Failure::new)?);
                } else {
                    print!("{}", report::text(&r));
                }
            }
            Ok(r) => {
                if args.json {
                    println!("{}", serde_json::to_string(&r).map_err(Failure::new)?);
                }
            }
            Err(f) => {
                if args.json {
                    println!("{}", serde_json::json!({ "failure": f }));
                } else {
                    eprintln!("FAILED {f}");
                    for line in &f.recent {
                        eprintln!("    {line}");
                    }
                    eprintln!(
                        "reproduce: tessera simulate --seed {} --steps {}",
                        f.seed, args.steps
                    );
                }
                failures.push(f);
            }
        }
    }
    if args.seeds > 1 && !args.json {
        println!(
            "{} seeds from {first}: {} passed, {} failed",
            args.seeds,
            args.seeds - failures.len() as u64,
            failures.len()
        );
    }
    Ok(match failures.first() {
        None => ExitCode::SUCCESS,
        Some(f) => ExitCode::from(f.kind.exit_code()),
    })
}
