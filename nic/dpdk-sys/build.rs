//! Finds the system DPDK with pkg-config and compiles `shim/shim.c`, which exports DPDK's static-inline fast paths
//! (burst receive/transmit, mbuf data access) as ordinary symbols Rust can call.
//!
//! Linking is dynamic on purpose: DPDK's shared build loads its poll-mode drivers (net_af_packet, net_af_xdp,
//! net_null, net_ring, ...) as plugins from its driver directory at `rte_eal_init`, and it only does so when
//! `librte_eal.so` itself is loaded as a shared library.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let library = match pkg_config::Config::new().atleast_version("22.11").probe("libdpdk") {
        Ok(library) => library,
        Err(error) => panic!(
            "dpdk-sys needs the system DPDK (>= 22.11) visible to pkg-config as `libdpdk`; on Debian install \
             `dpdk dpdk-dev libdpdk-dev`. pkg-config said: {error}"
        ),
    };

    // The pkg-config crate exposes include paths but drops the other compile flags DPDK relies on
    // (`-include rte_config.h`, `-march=...`), so the shim is compiled with the full `--cflags` output.
    let pkg_config = std::env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_owned());
    let output = Command::new(&pkg_config)
        .args(["--cflags", "libdpdk"])
        .output()
        .unwrap_or_else(|error| panic!("running `{pkg_config} --cflags libdpdk` failed: {error}"));
    assert!(output.status.success(), "`{pkg_config} --cflags libdpdk` exited with {}", output.status);
    let cflags = String::from_utf8(output.stdout).expect("pkg-config printed non-UTF-8 cflags");

    let mut build = cc::Build::new();
    build.file("shim/shim.c").warnings(true).extra_warnings(true).opt_level(3);
    for path in &library.include_paths {
        build.include(path);
    }
    let mut flags = cflags.split_whitespace();
    while let Some(flag) = flags.next() {
        if flag == "-include" {
            let header = flags.next().expect("pkg-config printed `-include` without a header");
            build.flag("-include").flag(header);
        } else if !flag.starts_with("-I") {
            build.flag(flag);
        }
    }
    build.compile("bourse_dpdk_shim");
}
