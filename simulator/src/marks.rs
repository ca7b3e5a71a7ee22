//! Coverage marks: named moments a run reached ("family revoked on reuse", "planted session
//! refused"), counted, so that the smoke tests can assert every scenario reaches the moment
//! its defence is about (TigerBeetle's marks, FoundationDB's CODE_PROBE).

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Marks(BTreeMap<&'static str, u64>);

impl Marks {
    pub fn hit(&mut self, mark: &'static str) {
        *self.0.entry(mark).or_default() += 1;
    }

    pub fn count(&self, mark: &str) -> u64 {
        self.0.get(mark).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&&'static str, &u64)> {
        self.0.iter()
    }

    pub fn merge(&mut self, other: &Marks) {
        for (k, v) in &other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }
}
