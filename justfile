# List the recipes.
default:
    @just --list

# Run the test suite.
test:
    cargo test

# Check formatting and lints, warnings as errors.
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings

# Regenerate schemas/plan.schema.json from the plan types.
schema:
    cargo run --quiet -- schema > schemas/plan.schema.json

# Run a benchmark under benches/ (`just bench scan`); without a name, list them.
bench name="" *args="":
    @if [ -z "{{name}}" ]; then ls benches | grep -v '^common' | sed 's/\.sh$//'; else bash benches/{{name}}.sh {{args}}; fi

# Run exactly what CI runs.
ci:
    bash .ci/run
