//! Turns the breached-password list (`data/breached-passwords.txt`) into sorted 64-bit
//! fingerprints, compiled into the library: about 1 MB instead of the list's text, looked
//! up by binary search without building anything at start-up.

use std::io::Write;

include!("src/password/fingerprint.rs");

fn main() {
    const LIST: &str = "data/breached-passwords.txt";
    println!("cargo::rerun-if-changed={LIST}");
    println!("cargo::rerun-if-changed=src/password/fingerprint.rs");
    let text = match std::fs::read_to_string(LIST) {
        Ok(text) => text,
        Err(e) => {
            println!("cargo::error=cannot read {LIST}: {e}");
            return;
        }
    };
    let mut prints: Vec<u64> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| fingerprint(&l.to_lowercase()))
        .collect();
    prints.sort_unstable();
    prints.dedup();
    let bytes: Vec<u8> = prints.iter().flat_map(|p| p.to_le_bytes()).collect();
    let Some(out) = std::env::var_os("OUT_DIR") else {
        println!("cargo::error=OUT_DIR is not set");
        return;
    };
    let path = std::path::Path::new(&out).join("breached-fingerprints.bin");
    let written = std::fs::File::create(&path).and_then(|mut f| f.write_all(&bytes));
    if let Err(e) = written {
        println!("cargo::error=cannot write {}: {e}", path.display());
    }
}
