//! The per-address throttle state stays within its configured bound however many addresses
//! fail, and a replay of the same log evicts exactly the same addresses.

use std::net::{IpAddr, Ipv4Addr};

use tessera_core::throttle::ThrottlePolicy;
use tessera_core::{Event, Policy, Views};
use tessera_tests::T0;

const ADDRESSES_MAX: usize = 1_000;

fn policy() -> Policy {
    Policy {
        throttle: ThrottlePolicy {
            addresses_max: ADDRESSES_MAX,
            ..ThrottlePolicy::default()
        },
        ..Policy::fast_for_tests()
    }
}

/// `failures` failed logins from `addresses` distinct addresses, round robin, one per ms.
fn flood(views: &mut Views, failures: u32, addresses: u32) -> usize {
    let mut touched = Vec::new();
    let mut most = 0;
    for i in 0..failures {
        let n = i % addresses;
        let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
        touched.clear();
        let at = T0.plus_ms(u64::from(i));
        views
            .apply(
                at,
                &Event::UnknownAccountLoginFailed {
                    client: Some(client),
                },
                &mut touched,
            )
            .expect("applies");
        most = most.max(views.address_strikes_count());
    }
    most
}

#[test]
fn a_flood_from_many_addresses_keeps_the_state_bounded() {
    let mut views = Views::for_policy(&policy());
    // 200,000 failures from 50,000 addresses here; the full-size run is the ignored test below.
    let most = flood(&mut views, 200_000, 50_000);
    assert!(
        most <= ADDRESSES_MAX,
        "held {most} address records, bound {ADDRESSES_MAX}"
    );
    assert_eq!(
        views.address_strikes_count(),
        ADDRESSES_MAX,
        "the bound is used, not undershot"
    );
    views
        .check_invariants()
        .expect("invariants hold after eviction");
    // The most recent addresses are the ones kept.
    let last = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (199_999 % 50_000)));
    assert!(views.address_strikes(&last).is_some());
    // Replaying the same events gives the same views: eviction is deterministic.
    let mut again = Views::for_policy(&policy());
    flood(&mut again, 200_000, 50_000);
    assert_eq!(again, views);
}

/// The full-size bound: 1,000,000 failed logins from 100,000 addresses. Run with
/// `cargo test -p tessera-tests throttle_bound -- --ignored --nocapture`.
#[test]
#[ignore = "full size: about 10 s in a debug build"]
fn a_million_failures_from_a_hundred_thousand_addresses() {
    let mut views = Views::for_policy(&policy());
    let most = flood(&mut views, 1_000_000, 100_000);
    println!(
        "1,000,000 failures from 100,000 addresses: at most {most} address records held (bound {ADDRESSES_MAX})"
    );
    assert!(most <= ADDRESSES_MAX);
}
