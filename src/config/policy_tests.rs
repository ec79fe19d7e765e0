//! The cache policies' keys: off by default, read like any duration, and a
//! bad value refused with its full key (exit 2 in `run` and `config check`).

use std::time::Duration;

use super::*;

fn load(extra: &str) -> Result<Config, String> {
    super::fixture::load(extra, &[])
}

#[test]
fn the_policies_are_off_by_default_and_read_as_durations() {
    let off = load("").unwrap();
    assert_eq!(
        off.sets["invoice"].policies(),
        crate::state::Policies::default()
    );
    let on = load(
        "ttl = \"1h\"\nserve_stale = \"10m\"\nfailure_ttl = \"1m\"\nrefresh_after = \"50m\"\n",
    )
    .unwrap();
    let set = &on.sets["invoice"];
    assert_eq!(set.serve_stale, Some(Duration::from_secs(600)));
    assert_eq!(
        set.policies(),
        crate::state::Policies {
            serve_stale: Some(600_000),
            failure_ttl: Some(60_000),
            refresh_after: Some(3_000_000),
        }
    );
}

#[test]
fn a_bad_policy_is_refused_with_its_full_key() {
    let cases = [
        ("serve_stale = \"soon\"\n", "sets.invoice.serve_stale"),
        ("failure_ttl = \"0s\"\n", "sets.invoice.failure_ttl"),
        ("refresh_after = \"5m\"\n", "sets.invoice.refresh_after"),
        (
            "ttl = \"5m\"\nrefresh_after = \"10m\"\n",
            "sets.invoice.refresh_after",
        ),
    ];
    for (extra, key) in cases {
        let error = load(extra).unwrap_err().to_string();
        assert!(
            error.contains(&format!("config key {key} ")),
            "{extra}: {error}"
        );
    }
    let error = load("refresh_after = \"5m\"\n").unwrap_err().to_string();
    assert!(
        error.contains("needs a ttl: set sets.invoice.ttl"),
        "{error}"
    );
}
