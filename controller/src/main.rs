//! `meltemi`: the control plane command line (in progress).
fn main() {
    eprintln!("meltemi: not built yet");
    std::process::exit(2);
}
