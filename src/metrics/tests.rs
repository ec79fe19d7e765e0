use super::*;
use crate::config::Config;

fn config(sets: &[&str], events: &[&str]) -> Config {
    let mut text = format!("[sns]\nevents = {events:?}\n");
    for set in sets {
        text.push_str(&format!(
            "[sets.{set}]\nprocessor = {{ kind = \"embedded\" }}\n"
        ));
    }
    toml::from_str(&text).expect("a valid configuration")
}

/// A sample line of `/metrics` (name, labels, value).
fn has(text: &str, sample: &str) -> bool {
    text.lines().any(|l| l == sample)
}

#[test]
fn every_series_known_in_advance_exists_at_zero_per_set() {
    let text = Metrics::new(&config(&["alpha", "beta"], &["ready", "failed"])).render();
    for set in ["alpha", "beta"] {
        for family in [
            "hits",
            "misses",
            "claims_won",
            "claims_lost",
            "coalesced",
            "lease_takeovers",
            "trigger_deadline_expiries",
            "resets",
            "parked",
            "processing_runs",
            "stale_results",
            "dependency_resets",
        ] {
            let line = format!("triggered_cache_{family}_total{{set=\"{set}\"}} 0");
            assert!(has(&text, &line), "no {line:?} in\n{text}");
        }
        for line in [
            format!("triggered_cache_processing_seconds_count{{set=\"{set}\"}} 0"),
            format!(
                "triggered_cache_processing_failures_total{{set=\"{set}\",kind=\"retryable\"}} 0"
            ),
            format!(
                "triggered_cache_processing_failures_total{{set=\"{set}\",kind=\"permanent\"}} 0"
            ),
            format!("triggered_cache_events_published_total{{event=\"ready\",set=\"{set}\"}} 0"),
            format!("triggered_cache_events_published_total{{event=\"failed\",set=\"{set}\"}} 0"),
            format!("triggered_cache_oldest_run_seconds{{set=\"{set}\"}} 0.0"),
        ] {
            assert!(has(&text, &line), "no {line:?} in\n{text}");
        }
        assert!(
            !text.contains(&format!("event=\"hit\",set=\"{set}\"")),
            "events that are not published are not listed"
        );
    }
    for line in [
        "triggered_cache_dead_lettered_total{kind=\"malformed\"} 0",
        "triggered_cache_dead_lettered_total{kind=\"failed\"} 0",
        "triggered_cache_aws_errors_total{service=\"sqs\"} 0",
        "triggered_cache_aws_errors_total{service=\"dynamodb\"} 0",
        "triggered_cache_aws_errors_total{service=\"sns\"} 0",
        "triggered_cache_queue_messages{queue=\"requests\"} 0",
        "triggered_cache_queue_messages{queue=\"dlq\"} 0",
        "triggered_cache_message_age_seconds_count 0",
        "triggered_cache_ready 0",
        "triggered_cache_messages_received_total 0",
    ] {
        assert!(has(&text, line), "no {line:?} in\n{text}");
    }
    // And nothing is left without a sample: every family declared has one.
    for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split(' ').next().unwrap();
        assert!(
            text.lines()
                .any(|l| !l.starts_with('#') && l.starts_with(name)),
            "{name} has no sample: it would read as \"no data\"\n{text}"
        );
    }
}

#[test]
fn the_oldest_run_gauge_is_current_at_each_scrape() {
    let m = Metrics::new(&config(&["alpha"], &["ready"]));
    let run = m.run_started("alpha");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let text = m.render();
    let age: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("triggered_cache_oldest_run_seconds{set=\"alpha\"} "))
        .expect("the gauge")
        .parse()
        .unwrap();
    assert!(age >= 0.02, "{age}");
    drop(run);
    assert!(
        has(
            &m.render(),
            "triggered_cache_oldest_run_seconds{set=\"alpha\"} 0.0"
        ),
        "back to 0 when the run ends"
    );
}
