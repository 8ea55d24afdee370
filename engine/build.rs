//! Puts the commit the binary is built from into `SEEDNODE_COMMIT` for `seednode --version`:
//! `git rev-parse --short HEAD`, or `unknown` without git or a repository (a source tarball).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SEEDNODE_COMMIT={commit}");
    // Rebuild when HEAD moves (a commit, a checkout); the paths work in worktrees too.
    if let Some(path) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={path}");
    }
    if let Some(path) = git(&["rev-parse", "--git-common-dir"]) {
        println!("cargo:rerun-if-changed={path}/refs/heads");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
