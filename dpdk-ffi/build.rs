//! Generates raw bindings over the system DPDK (found with pkg-config) and
//! compiles the shim that exports DPDK's static-inline functions.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");

    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .expect("DPDK 22.11 development files not found: apt-get install libdpdk-dev pkg-config");

    // pkg-config's cflags also carry `-include rte_config.h` and `-march=...`;
    // pass them to both the shim compiler and libclang so both see the same ABI.
    let raw = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("pkg-config");
    let flags: Vec<String> = String::from_utf8_lossy(&raw.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect();

    let mut build = cc::Build::new();
    build
        .file("shim.c")
        .include(".")
        .opt_level(3)
        .warnings(false);
    for f in &flags {
        build.flag(f);
    }
    build.compile("rvs_dpdk_shim");

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_arg("-I.")
        .allowlist_function("rte_.*")
        .allowlist_function("rvs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("RING_F_.*")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_gtp_.*")
        .opaque_type("rte_.*_hdr")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in &flags {
        builder = builder.clang_arg(f);
    }
    for p in &dpdk.include_paths {
        builder = builder.clang_arg(format!("-I{}", p.display()));
    }
    let bindings = builder.generate().expect("bindgen over DPDK headers");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings.write_to_file(out).expect("write bindings");
}
