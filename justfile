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

# Regenerate the committed OpenAPI document (a test fails while it is stale)
openapi:
    cargo run -q -- openapi > docs/openapi.json

# Schemathesis against a fresh monolith, reproducible (fixed examples and seed; not in CI):
# just schemathesis, or ST_EXAMPLES=200 ST_SEED=7 just schemathesis
schemathesis *ARGS:
    bash tools/schemathesis.sh {{ARGS}}

# Everything CI runs
ci:
    bash .ci/run

# End-to-end tests: the real binaries in every mode (monolith, layered, microservices)
e2e *ARGS:
    cargo nextest run -p arcana {{ARGS}}

# Load benchmark of the deployment modes (the `bench` package)
bench *ARGS:
    cargo run --release -p bench -- {{ARGS}}

# Import benchmark: a Python-era database (SQLAlchemy, Werkzeug hashes) imported into a fresh
# database of each backend, rows/s and peak RSS: just bench-import --rows 100000
# (PostgreSQL and MariaDB from ARCANA_TEST_POSTGRES_URL / ARCANA_TEST_MYSQL_URL)
bench-import *ARGS:
    cargo build --release --features mysql -p arcana --bins
    IMPORT_BENCH=1 bash tests/import/run.sh target/release {{ARGS}}

# Mixed load on the layered deployment with scripted faults (rolling restart, kill -9 of each layer): just soak --seconds 300
soak *ARGS:
    cargo run --release -p bench -- soak {{ARGS}}

# Validate the deployment artefacts offline: Helm chart in every mode, compose files, Dockerfile
helm-lint:
    bash .ci/deploy-checks

# Build the six images with podman and run them: the monolith (read-only root, data volume), the
# layered set with secrets as files and mutual TLS, and the black-box REST suite against containers
# of every image (`just images --monolith-only`: the monolith alone, as CI does)
images *ARGS:
    bash deploy/images-check {{ARGS}}

# Build one image per binary with Docker (BuildKit): just docker-build 0.1.0
docker-build tag="latest" prefix="arcana/":
    docker build -f deploy/docker/Dockerfile --target monolith     -t {{prefix}}arcana:{{tag}} .
    docker build -f deploy/docker/Dockerfile --target gateway      -t {{prefix}}arcana-gateway:{{tag}} .
    docker build -f deploy/docker/Dockerfile --target service      -t {{prefix}}arcana-service:{{tag}} .
    docker build -f deploy/docker/Dockerfile --target auth-service -t {{prefix}}arcana-auth-service:{{tag}} .
    docker build -f deploy/docker/Dockerfile --target user-service -t {{prefix}}arcana-user-service:{{tag}} .
    docker build -f deploy/docker/Dockerfile --target repository   -t {{prefix}}arcana-repository:{{tag}} .
