//! Ships the SQLite loadable extension inside the Python package.
//!
//! With the `bundle-ext` feature (which `pyproject.toml` turns on for every
//! maturin build: `pip install ./python`, `maturin build`, `maturin
//! develop`), this compiles `bindings/sqlite` (its own cargo workspace: it
//! must never share a build with the bundled SQLite) and places the library
//! at `honker/libhonker_ext.so`, where `honker.load_extension` finds it and
//! the wheel picks it up. `HONKER_EXT_PREBUILT=/path/to/libhonker_ext.so`
//! copies an already built one instead (the Makefile builds it once for
//! every test). Plain `cargo build`/`cargo test` skip all of this.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HONKER_EXT_PREBUILT");
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_BUNDLE_EXT").is_none() {
        return;
    }
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let file_name = match target_os.as_str() {
        "macos" | "ios" => "libhonker_ext.dylib",
        "windows" => "honker_ext.dll",
        _ => "libhonker_ext.so",
    };
    let dest = manifest_dir.join("honker").join(file_name);

    if let Some(prebuilt) = env::var_os("HONKER_EXT_PREBUILT") {
        let prebuilt = PathBuf::from(prebuilt);
        println!("cargo:rerun-if-changed={}", prebuilt.display());
        copy(&prebuilt, &dest);
        return;
    }

    let ext_dir = manifest_dir.join("..").join("bindings").join("sqlite");
    let ext_manifest = ext_dir.join("Cargo.toml");
    if !ext_manifest.exists() {
        panic!(
            "bundle-ext: {} is missing; build from the honker repository (or set HONKER_EXT_PREBUILT)",
            ext_manifest.display()
        );
    }
    for watched in [
        ext_manifest.clone(),
        ext_dir.join("Cargo.lock"),
        ext_dir.join("src"),
        manifest_dir.join("..").join("honker-core").join("src"),
        manifest_dir
            .join("..")
            .join("honker-core")
            .join("Cargo.toml"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }

    // A target directory of its own: the outer cargo holds the lock on the
    // workspace's one while this script runs.
    let target_dir = match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("honker-ext"),
        None => manifest_dir.join("..").join("target").join("honker-ext"),
    };
    let target = env::var("TARGET").expect("TARGET");
    let profile = if env::var("PROFILE").as_deref() == Ok("release") {
        "release"
    } else {
        "debug"
    };
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--locked")
        .arg("--manifest-path")
        .arg(&ext_manifest)
        .arg("--target")
        .arg(&target)
        .arg("--target-dir")
        .arg(&target_dir);
    if profile == "release" {
        cmd.arg("--release");
    }
    // Settings meant for this crate's build, not the extension's.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("bundle-ext: could not run cargo");
    assert!(
        status.success(),
        "bundle-ext: building bindings/sqlite failed ({status})"
    );
    copy(
        &target_dir.join(&target).join(profile).join(file_name),
        &dest,
    );
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        panic!(
            "bundle-ext: copying {} to {}: {e}",
            from.display(),
            to.display()
        );
    }
}
