# Sourced by the project's scripts: one shared cargo target dir outside the clone, so CI and
# repeated runs build once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/meltemi-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
