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
    @if [ -z "{{name}}" ]; then ls benches | grep '\.sh$' | grep -v '^common' | sed 's/\.sh$//'; else bash benches/{{name}}.sh {{args}}; fi

# Run exactly what CI runs.
ci:
    bash .ci/run

# Kill `ferry run` at random points over and over (default 200 times) on a generated
# tree, let it complete, then check the destination against the source.
soak kills="200":
    bash benches/soak.sh {{kills}}
