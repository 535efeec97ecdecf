//! Finds libdescent: `DESCENT_LIB_DIR` (a directory holding libdescent.so), else
//! `pkg-config --libs --cflags descent` run as a command. Emits an rpath so that this
//! package's tests, examples and binaries find the library without LD_LIBRARY_PATH.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DESCENT_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    println!("cargo:rerun-if-changed=build.rs");

    let unix = env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|f| f.split(',').any(|x| x == "unix"));
    let mut dirs: Vec<String> = Vec::new();
    let mut libs: Vec<String> = Vec::new();

    if let Some(dir) = env::var_os("DESCENT_LIB_DIR").filter(|d| !d.is_empty()) {
        let dir = dir.to_string_lossy().into_owned();
        if !Path::new(&dir).is_dir() {
            fail(&format!("DESCENT_LIB_DIR={dir} is not a directory"));
        }
        let names = ["libdescent.so", "libdescent.dylib", "descent.lib", "libdescent.a"];
        if !names.iter().any(|n| Path::new(&dir).join(n).exists()) {
            fail(&format!("DESCENT_LIB_DIR={dir} holds no libdescent.so"));
        }
        dirs.push(dir);
        libs.push("descent".to_owned());
    } else {
        let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
        let output = Command::new(&pkg_config).args(["--libs", "--cflags", "descent"]).output();
        match output {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                for flag in text.split_whitespace() {
                    if let Some(d) = flag.strip_prefix("-L") {
                        dirs.push(d.to_owned());
                    } else if let Some(l) = flag.strip_prefix("-l") {
                        libs.push(l.to_owned());
                    }
                }
                if !libs.iter().any(|l| l == "descent") {
                    fail(&format!("`{pkg_config} --libs descent` printed no -ldescent: {text}"));
                }
            }
            Ok(out) => fail(&format!(
                "`{pkg_config} --libs --cflags descent` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => fail(&format!("cannot run `{pkg_config}`: {e}")),
        }
    }

    for dir in &dirs {
        println!("cargo:rustc-link-search=native={dir}");
        if unix {
            // For this package's tests, examples and binaries only (not for dependents).
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
    for lib in &libs {
        if lib == "descent" {
            println!("cargo:rustc-link-lib=dylib=descent");
        } else {
            println!("cargo:rustc-link-lib={lib}");
        }
    }
    if let Some(dir) = dirs.first() {
        println!("cargo:lib_dir={dir}");
    }
}

fn fail(why: &str) -> ! {
    eprintln!(
        "error: libdescent not found ({why}).\n\
         Install libdescent and either\n  \
         - make `pkg-config --libs descent` work (e.g. PKG_CONFIG_PATH=<prefix>/lib/pkgconfig), or\n  \
         - set DESCENT_LIB_DIR=<prefix>/lib (the directory holding libdescent.so)."
    );
    std::process::exit(1);
}
