//! Records the fjall version this build links, for archive headers and `floe --version`.
use std::path::PathBuf;

fn main() {
    let mut dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut version = String::from("3");
    loop {
        let lock = dir.join("Cargo.lock");
        if let Ok(text) = std::fs::read_to_string(&lock) {
            println!("cargo:rerun-if-changed={}", lock.display());
            let mut lines = text.lines();
            while let Some(l) = lines.next() {
                if l.trim() == "name = \"fjall\"" {
                    if let Some(v) = lines.next().and_then(|v| v.trim().strip_prefix("version = \"")) {
                        version = v.trim_end_matches('"').to_owned();
                    }
                    break;
                }
            }
            break;
        }
        if !dir.pop() {
            break;
        }
    }
    println!("cargo:rustc-env=FLOE_FJALL_VERSION={version}");
}
