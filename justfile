# arcana developer commands (`just --list`)

# Run the monolith (REST :8080, SQLite in ./data)
run *ARGS:
    cargo run --release -- {{ARGS}}

# Run the test suite (set ARCANA_TEST_POSTGRES_URL / ARCANA_TEST_MYSQL_URL to include those backends)
test *ARGS:
    cargo nextest run --workspace {{ARGS}}

# Format check and clippy with every backend
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets --features mysql -- -D warnings

# Everything CI runs
ci:
    bash .ci/run
