//! Build facts for the `warden` CLI: the git commit it is built from, and
//! the filter module it embeds.
//!
//! The module embedded is `$WARDEN_EMBED_WASM` when set (it must exist), else
//! this workspace's `target/warden_filter.wasm` (what `make wasm` ships)
//! when it has been built. Without one (a fresh clone, `cargo test` before the filter
//! is built) nothing is embedded and the CLI says so when it needs a module,
//! rather than looking for some other file.

use std::path::{Path, PathBuf};

#[path = "../build-support/git_hash.rs"]
mod git_hash;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let (Some(manifest), Some(out)) = (
        std::env::var_os("CARGO_MANIFEST_DIR"),
        std::env::var_os("OUT_DIR"),
    ) else {
        println!("cargo:warning=no CARGO_MANIFEST_DIR or OUT_DIR: nothing embedded");
        return;
    };
    let manifest = PathBuf::from(manifest);
    let hash = git_hash::git_hash(&manifest);
    println!("cargo:rustc-env=WARDEN_GIT_HASH={hash}");
    let expression = match module_to_embed(&manifest) {
        Ok(Some(path)) => format!(
            "{{ const BYTES: &[u8] = include_bytes!({:?}); Some(BYTES) }}",
            path.display().to_string()
        ),
        Ok(None) => "None".to_owned(),
        Err(message) => {
            // An explicit request that cannot be met fails the build.
            eprintln!("error: {message}");
            std::process::exit(1);
        }
    };
    let target = Path::new(&out).join("embedded_wasm.rs");
    if let Err(error) = std::fs::write(&target, expression) {
        eprintln!("error: writing {}: {error}", target.display());
        std::process::exit(1);
    }
}

fn module_to_embed(manifest: &Path) -> Result<Option<PathBuf>, String> {
    println!("cargo:rerun-if-env-changed=WARDEN_EMBED_WASM");
    if let Some(path) = std::env::var_os("WARDEN_EMBED_WASM").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        println!("cargo:rerun-if-changed={}", path.display());
        return match std::fs::canonicalize(&path) {
            Ok(path) => Ok(Some(path)),
            Err(error) => Err(format!("WARDEN_EMBED_WASM={}: {error}", path.display())),
        };
    }
    let built = manifest.join("../target/warden_filter.wasm");
    // Watched even while missing, so the first build of the filter is picked up.
    println!("cargo:rerun-if-changed={}", built.display());
    match std::fs::canonicalize(&built) {
        Ok(path) => Ok(Some(path)),
        Err(_) => {
            println!(
                "cargo:warning=no filter module embedded ({} is not built): `make cli` builds the filter first",
                built.display()
            );
            Ok(None)
        }
    }
}
