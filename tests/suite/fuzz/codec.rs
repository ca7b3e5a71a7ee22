//! Target: the storage codec's readers, as the store calls them on bytes read from disk
//! (`decode_envelope` for the log, which dispatches to `decode_event`; `decode_view_key`
//! and `decode_view_record` for the persisted views), and `decode_event` directly.
//!
//! The corpus is real: the envelopes and view records of a seeded engine run that produces
//! every event type. Besides the generic mutations, corrupt bincode length prefixes (up to
//! 2^64) are written at random positions: a decode must refuse them, not reserve the memory
//! they claim; the harness watches the process's peak size for that.

use std::sync::OnceLock;

use rand::RngExt;
use rand::rngs::ChaCha20Rng;
use tessera_core::Event;
use tessera_storage::codec::{
    ViewTree, decode_envelope, decode_event, decode_view_key, decode_view_record, encode_envelope,
    encode_event, encode_view_record, view_key,
};
use tessera_storage::{EventStore, MemoryStore};
use tessera_tests::workload::{Driver, Mix, SharedStore, read_log};

use super::{Bytes, Mutator, Outcome, Run, VM_GROWTH_MAX, fuzz, vm_peak};

/// A seed and length whose run produces every event type (the rebuild test relies on it
/// too, and asserts it).
const SEED: u64 = 49;
const STEPS: usize = 400;

struct Corpus {
    envelopes: Vec<Vec<u8>>,
    /// `(kind, payload)` of every envelope's event.
    events: Vec<(&'static str, Vec<u8>)>,
    payloads: Vec<Vec<u8>>,
    /// `(tree, key, record)` of every persisted view record.
    views: Vec<(ViewTree, Vec<u8>, Vec<u8>)>,
    view_keys: Vec<Vec<u8>>,
    view_records: Vec<Vec<u8>>,
}

/// Built once per process: the engine run costs a second or two in a debug build.
fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let store = SharedStore::new(MemoryStore::new());
        let mut driver = Driver::start(Box::new(store.clone()), SEED, Mix::ALL);
        for _ in 0..STEPS {
            let _ = driver.step();
        }
        driver.engine.shutdown();
        let store = store.lock();
        let log = read_log(&*store);
        let envelopes: Vec<Vec<u8>> = log
            .iter()
            .map(|e| encode_envelope(e).expect("an envelope encodes"))
            .collect();
        let events: Vec<(&'static str, Vec<u8>)> = log
            .iter()
            .map(|e| {
                (
                    e.event.kind(),
                    encode_event(&e.event).expect("an event encodes"),
                )
            })
            .collect();
        let views: Vec<(ViewTree, Vec<u8>, Vec<u8>)> = store
            .view_records()
            .map(|r| {
                let (key, record) = r.expect("a view record reads");
                let (tree, k) = view_key(&key);
                (
                    tree,
                    k,
                    encode_view_record(&record).expect("a record encodes"),
                )
            })
            .collect();
        Corpus {
            payloads: events.iter().map(|(_, p)| p.clone()).collect(),
            view_keys: views.iter().map(|(_, k, _)| k.clone()).collect(),
            view_records: views.iter().map(|(_, _, r)| r.clone()).collect(),
            envelopes,
            events,
            views,
        }
    })
}

#[derive(Debug)]
enum Input {
    Envelope(Bytes),
    Event {
        kind: String,
        schema: u16,
        payload: Bytes,
    },
    ViewKey(ViewTree, Bytes),
    ViewRecord(ViewTree, Bytes),
}

const DICTIONARY: &[&[u8]] = &[
    &[0x00],
    &[0x01],
    &[0x02],
    &[0x20],
    &[0xfa],
    b"account",
    b"session",
    b"registered",
    b"session_started",
    &[0x80, 0x80, 0x80],
    &[0xc0],
    &[0xed, 0xa0, 0x80],
    &[0xff; 8],
    &[0x00; 32],
];

fn generate(c: &Corpus, rng: &mut ChaCha20Rng) -> Input {
    match rng.random_range(0..8) {
        0..=3 => Input::Envelope(Bytes(
            Mutator {
                corpus: &c.envelopes,
                dictionary: DICTIONARY,
                max_len: 4096,
            }
            .input(rng),
        )),
        4 | 5 => {
            let (kind, payload) = &c.events[rng.random_range(0..c.events.len())];
            let kind = if rng.random_bool(0.9) {
                (*kind).to_owned()
            } else {
                Event::KINDS[rng.random_range(0..Event::KINDS.len())].to_owned()
            };
            // Mostly mutations of this kind's own payload, so they decode deep.
            let corpus: &[Vec<u8>] = if rng.random_bool(0.8) {
                std::slice::from_ref(payload)
            } else {
                &c.payloads
            };
            Input::Event {
                kind,
                schema: if rng.random_bool(0.95) {
                    1
                } else {
                    rng.random()
                },
                payload: Bytes(
                    Mutator {
                        corpus,
                        dictionary: DICTIONARY,
                        max_len: 4096,
                    }
                    .input(rng),
                ),
            }
        }
        6 => {
            let (tree, _, _) = &c.views[rng.random_range(0..c.views.len())];
            let tree = if rng.random_bool(0.8) {
                *tree
            } else {
                ViewTree::ALL[rng.random_range(0..ViewTree::ALL.len())]
            };
            Input::ViewKey(
                tree,
                Bytes(
                    Mutator {
                        corpus: &c.view_keys,
                        dictionary: DICTIONARY,
                        max_len: 256,
                    }
                    .input(rng),
                ),
            )
        }
        _ => {
            let (tree, _, record) = &c.views[rng.random_range(0..c.views.len())];
            let tree = if rng.random_bool(0.8) {
                *tree
            } else {
                ViewTree::ALL[rng.random_range(0..ViewTree::ALL.len())]
            };
            // Mostly mutations of a record of this very tree, so they decode deep.
            let corpus: &[Vec<u8>] = if rng.random_bool(0.8) {
                std::slice::from_ref(record)
            } else {
                &c.view_records
            };
            Input::ViewRecord(
                tree,
                Bytes(
                    Mutator {
                        corpus,
                        dictionary: DICTIONARY,
                        max_len: 4096,
                    }
                    .input(rng),
                ),
            )
        }
    }
}

/// A decoded value, encoded again, is never larger than the bytes it came from (encoding
/// is canonical, and a reader accepts nothing it would not write): so nothing decoded holds
/// more than its input paid for.
fn bounded(what: &str, input: usize, reencoded: usize) -> Result<(), String> {
    if reencoded > input {
        return Err(format!(
            "a {what} of {input} bytes decoded to one that encodes in {reencoded}"
        ));
    }
    Ok(())
}

fn check(input: &Input) -> Outcome {
    match input {
        Input::Envelope(bytes) => match decode_envelope(&bytes.0) {
            Ok(e) => {
                let again = encode_envelope(&e).map_err(|err| format!("re-encoding: {err}"))?;
                bounded("envelope", bytes.0.len(), again.len())?;
                let back = decode_envelope(&again).map_err(|err| format!("re-decoding: {err}"))?;
                if (back.sequence, &back.stream, &back.event, back.hash)
                    != (e.sequence, &e.stream, &e.event, e.hash)
                {
                    return Err(format!("{e:?} reads back as {back:?}"));
                }
                Ok("envelope decoded")
            }
            Err(_) => Ok("envelope refused"),
        },
        Input::Event {
            kind,
            schema,
            payload,
        } => match decode_event(kind, *schema, &payload.0) {
            Ok(event) => {
                if event.kind() != kind {
                    return Err(format!("{kind} decoded as {}", event.kind()));
                }
                let again = encode_event(&event).map_err(|err| format!("re-encoding: {err}"))?;
                bounded("payload", payload.0.len(), again.len())?;
                Ok("event decoded")
            }
            Err(_) => Ok("event refused"),
        },
        Input::ViewKey(tree, bytes) => match decode_view_key(*tree, &bytes.0) {
            Ok(key) => {
                let (again_tree, again) = view_key(&key);
                if again_tree != *tree || again != bytes.0 {
                    return Err(format!("{key:?} is not the key it was read from"));
                }
                Ok("view key decoded")
            }
            Err(_) => Ok("view key refused"),
        },
        Input::ViewRecord(tree, bytes) => match decode_view_record(*tree, &bytes.0) {
            Ok(record) => {
                let again =
                    encode_view_record(&record).map_err(|err| format!("re-encoding: {err}"))?;
                bounded("view record", bytes.0.len(), again.len())?;
                Ok("view record decoded")
            }
            Err(_) => Ok("view record refused"),
        },
    }
}

/// Inputs that once broke a property, kept so they stay fixed.
fn regressions() -> Vec<Input> {
    vec![]
}

fn run(run: Run) {
    let c = corpus();
    fuzz(run, &regressions(), |rng| generate(c, rng), check);
}

#[test]
fn codec_short() {
    run(Run::short("codec"));
}

#[test]
#[ignore = "the long run: one million cases by default, see fuzz/mod.rs"]
fn codec_long() {
    run(Run::long("codec"));
}

/// Every position of every corpus envelope, overwritten in turn with each corrupt length
/// prefix: whatever field the prefix lands on, the decode fails or stays small, and never
/// reserves what the prefix claims.
#[test]
fn codec_length_prefixes_claiming_gigabytes_are_refused() {
    let c = corpus();
    let start = vm_peak();
    let prefixes: [&[u8]; 3] = [
        &[0xfc, 0xff, 0xff, 0xff, 0xff],
        &[0xfd, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00],
        &[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ];
    for envelope in c.envelopes.iter().step_by(7) {
        for at in 0..envelope.len() {
            for prefix in prefixes {
                let mut bytes = envelope.clone();
                let end = (at + prefix.len()).min(bytes.len());
                bytes.splice(at..end, prefix.iter().copied());
                if let Ok(e) = decode_envelope(&bytes) {
                    let again = encode_envelope(&e).expect("a decoded envelope encodes");
                    assert!(again.len() <= bytes.len(), "{:?}", Bytes(bytes));
                }
            }
        }
    }
    // Other tests share the process, so only growth of a size no test reaches counts:
    // a reservation of what any of these prefixes claims is at least 4 GiB.
    let grown = vm_peak().saturating_sub(start);
    assert!(
        grown < VM_GROWTH_MAX,
        "the peak virtual size grew by {} MiB",
        grown >> 20
    );
}
