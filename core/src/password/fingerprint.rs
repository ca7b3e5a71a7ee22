// Shared by the build script (which writes the fingerprints) and the server (which looks
// them up): both must compute exactly the same value, whatever the Rust version or
// platform, so this is FNV-1a over the UTF-8 bytes, not the standard library's hasher,
// whose algorithm may change.

/// The 64-bit fingerprint of a breached-list entry: FNV-1a of its lower-case UTF-8 bytes.
/// With about 128,000 entries, a password not on the list matches one by accident with a
/// probability below 10^-14.
pub(crate) fn fingerprint(lower: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    lower.as_bytes().iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}
