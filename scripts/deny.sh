#!/usr/bin/env bash
# Supply-chain checks of the dependency graph with cargo-deny (deny.toml):
# licences, bans, sources, and RustSec advisories.
#
#   scripts/deny.sh              what CI runs
#
# Installs the pinned cargo-deny when it is missing (cargo install --locked;
# about 2.5 minutes on 2 cores). Advisories come from an offline snapshot of
# the RustSec database, ../shared/advisory-db next to the repository (or
# $ADVISORY_DB_SNAPSHOT): it is copied into .local/advisory-dbs as the git
# checkout cargo-deny expects, and cargo-deny runs with --offline. Without a
# snapshot the advisories check is skipped, saying so, and the other checks
# still run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

CARGO_DENY_VERSION="0.20.2"
# cargo-deny's directory name for https://github.com/RustSec/advisory-db.
DB_DIR_NAME="advisory-db-3157b0e258782691"

log() { printf 'deny.sh: %s\n' "$*" >&2; }

if [[ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]]; then
    log "installing cargo-deny $CARGO_DENY_VERSION (cargo install --locked; a few minutes) ..."
    started=$SECONDS
    cargo install --locked --quiet "cargo-deny@$CARGO_DENY_VERSION"
    log "installed cargo-deny in $((SECONDS - started))s"
fi

snapshot="${ADVISORY_DB_SNAPSHOT:-$root/../shared/advisory-db}"
checks=(bans licenses sources)
if [[ -d "$snapshot/crates" ]]; then
    dbs="$root/.local/advisory-dbs"
    db="$dbs/$DB_DIR_NAME"
    when="$(grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2}' "$snapshot/SNAPSHOT.md" 2>/dev/null | head -n 1 || true)"
    stamp="$(cat "$snapshot/SNAPSHOT.md" 2>/dev/null | sha256sum | cut -c1-16)-$(find "$snapshot/crates" -type f | wc -l)"
    if [[ ! -f "$db/.snapshot-stamp" || "$(cat "$db/.snapshot-stamp")" != "$stamp" ]]; then
        log "preparing the advisory database from $snapshot"
        rm -rf "$db"
        mkdir -p "$dbs"
        cp -R "$snapshot" "$db"
        # cargo-deny reads the checkout's HEAD commit date as the database's
        # age: commit the snapshot with the date it was taken.
        (
            cd "$db"
            git init --quiet
            git add --all
            GIT_AUTHOR_DATE="${when:+${when}T00:00:00Z}" GIT_COMMITTER_DATE="${when:+${when}T00:00:00Z}" \
                git -c user.name=snapshot -c user.email=snapshot@localhost \
                -c commit.gpgsign=false commit --quiet -m "RustSec advisory-db snapshot"
        )
        echo "$stamp" >"$db/.snapshot-stamp"
    fi
    export TRIGGERED_CACHE_ADVISORY_DBS="$dbs"
    checks+=(advisories)
    log "advisories: offline snapshot, RustSec commit $(grep -oE "[0-9a-f]{40}" "$snapshot/SNAPSHOT.md" | head -n 1 | cut -c1-12) of ${when:-unknown date}"
else
    log "advisories: SKIPPED - no advisory database snapshot at $snapshot (set ADVISORY_DB_SNAPSHOT, or run 'cargo deny check advisories' where the live database can be fetched)"
fi

# `--offline` makes cargo-deny run `cargo metadata` offline, which resolves
# the crates of every target platform in deny.toml's [graph] targets (Windows
# and wasm crates among them), not only those a build on this machine
# downloaded. Fetch them all first, so the check works on a fresh cargo cache.
log "fetching the crates of every target platform (cargo fetch --locked) ..."
cargo fetch --locked --quiet
cargo deny --offline --log-level error check --show-stats "${checks[@]}"
