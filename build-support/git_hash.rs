//! The git commit a build is made from, for version reports; shared by the
//! build scripts of the filter and the CLI (`#[path]`-included).

use std::path::Path;
use std::process::Command;

/// `$WARDEN_GIT_HASH` when set (a build from a source archive can say what
/// it was cut from), else `git rev-parse --short=12 HEAD` in `dir`, else
/// `unknown` (no git, or not a checkout): never a reason to fail a build.
/// Tells Cargo to run the build script again when HEAD moves.
pub fn git_hash(dir: &Path) -> String {
    println!("cargo:rerun-if-env-changed=WARDEN_GIT_HASH");
    if let Ok(hash) = std::env::var("WARDEN_GIT_HASH")
        && !hash.trim().is_empty()
    {
        return hash.trim().to_owned();
    }
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|text| !text.is_empty())
    };
    let Some(hash) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_owned();
    };
    // HEAD itself (a checkout), the branch it names (a commit), packed refs.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            println!("cargo:rerun-if-changed={}", dir.join(path).display());
        }
    }
    hash
}
