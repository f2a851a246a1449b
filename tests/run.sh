#!/usr/bin/env bash
# Runs every test of ecwid-lightspeed-sync on a fresh machine:
#   * Python tools into a repo-local .venv (moto server, SAM CLI, cargo-lambda, zig),
#   * a moto server on a free loopback port (DynamoDB + SQS + SSM for the AWS adapters),
#   * cargo fmt --check, clippy -D warnings, cargo machete (no unused dependencies),
#     the whole cargo test suite (unit, contract suites on SQLite and on moto, end to end
#     against the sandbox, the template's IAM checks),
#   * the Lambda end to end: the real function binaries under `cargo lambda watch`,
#     on moto and the sandbox (infra/local-lambda-check.py),
#   * `sam validate --lint` on template.yaml,
#   * the embedded demo, end to end (`els serve --demo --exit-after-demo`).
# Usage: tests/run.sh            (from anywhere; needs python3, cargo, network to the registries)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { printf '\n==> %s\n' "$*"; }

step "Python tools (.venv)"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha"
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x "$VENV/bin/moto_server" ] || [ ! -x "$VENV/bin/sam" ] || [ ! -x "$VENV/bin/cargo-lambda" ]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
    echo "$want" > "$stamp"
fi

step "Self-contained: no tracked file points outside the repository"
# A clone has nothing beside it: tests and tools read their data from inside the repository
# (a relative path above it, or an absolute path of the machine it was written on, is an
# error). The patterns are spelled so that this file does not match itself.
found=0
git grep -n -I -e '\.\./shared' -e '/wor[k]/' -- . || found=$?
case $found in
    0) echo "the files above point outside the repository" >&2; exit 1 ;;
    1) echo "none" ;;
    *) echo "git grep failed (is this a git checkout?)" >&2; exit 1 ;;
esac

step "moto server (DynamoDB + SQS + SSM) on loopback"
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p target
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" > target/moto.log 2>&1 &
MOTO_PID=$!
# moto can take long to stop after a big run (it keeps every item in memory): ask, give it
# ten seconds, then kill it, so the script always ends.
cleanup() {
    kill "$MOTO_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$MOTO_PID" 2>/dev/null || break
        sleep 0.2
    done
    kill -9 "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do
    if "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/moto-api/')" 2>/dev/null; then
        break
    fi
    sleep 0.2
done
export ELS_MOTO_ENDPOINT="http://127.0.0.1:$PORT"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
echo "moto at $ELS_MOTO_ENDPOINT"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo machete (no unused dependencies)"
# Installed into the repo-local tools, pinned, so a fresh machine gets the same check. A
# dependency it cannot see being used (only through a macro, say) is listed, with why, under
# `[package.metadata.cargo-machete] ignored` in that crate's Cargo.toml.
MACHETE_VERSION=0.9.2
MACHETE="$VENV/cargo-tools/bin/cargo-machete"
if [ ! -x "$MACHETE" ] || [ "$("$MACHETE" --version)" != "$MACHETE_VERSION" ]; then
    cargo install --quiet --locked --version "$MACHETE_VERSION" cargo-machete --root "$VENV/cargo-tools"
fi
"$MACHETE"

step "cargo test (unit, contract on SQLite and moto, end to end on the sandbox)"
cargo test --workspace --all-targets --no-fail-fast

step "Lambda end to end: the real binaries under cargo lambda watch, on moto and the sandbox"
# els-functions is built on its own, with the features `cargo lambda watch` resolves for it,
# so the watch finds it fresh and starts each function at once.
cargo build --quiet -p els-functions --bins
cargo build --quiet -p els-sandbox --bin els-sandbox -p els-cli --bin els
VENV_BIN="$VENV/bin" "$VENV/bin/python" infra/local-lambda-check.py

step "sam validate --lint"
"$VENV/bin/sam" validate --lint --template template.yaml --region us-east-1

step "embedded demo (els serve --demo)"
demo_db=$(mktemp -d)/demo.sqlite
cargo run --quiet -p els-cli --bin els -- serve --db "$demo_db" --listen 127.0.0.1:0 --demo --exit-after-demo
rm -rf "$(dirname "$demo_db")"

echo
echo "All tests passed."
