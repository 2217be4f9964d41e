//! Stamps the filter with the git commit it is built from
//! (`WARDEN_GIT_HASH`, logged at VM start).

#[path = "../build-support/git_hash.rs"]
mod git_hash;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    let hash = git_hash::git_hash(std::path::Path::new(&dir));
    println!("cargo:rustc-env=WARDEN_GIT_HASH={hash}");
}
