//! `bourse config check`: the example configuration parses as written, and a configuration that cannot be served
//! is refused before any journal is touched, every problem named by its key.

use std::process::{Command, Output};

fn bourse(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bourse")).args(args).current_dir(cwd).output().expect("run bourse")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn the_example_checks_and_a_broken_configuration_names_its_keys() {
    let tmp = bourse::demo::TempDir::new("bourse-config-check").unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bourse.example.toml");
    let text_in = std::fs::read_to_string(&example).unwrap();
    // The example's fixed ports may be taken on a shared host: check it on free ones, otherwise as written.
    let order = bourse::demo::free_udp_port().unwrap();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ok = text_in.replace("127.0.0.1:9000", &format!("127.0.0.1:{order}")).replace("127.0.0.1:9180", &format!("127.0.0.1:{metrics}"));
    let path = tmp.path().join("ok.toml");
    std::fs::write(&path, &ok).unwrap();
    let o = bourse(&["config", "check", "--config", path.to_str().unwrap()], tmp.path());
    assert!(o.status.success(), "the example configuration checks as written: {}", text(&o));
    assert!(text(&o).contains("OK"), "{}", text(&o));
    assert!(!tmp.path().join("bourse-wal").read_dir().unwrap().any(|e| e.is_ok()), "no journal was touched");

    // Its order-entry port in use and a core that does not exist: both named, nothing recovered.
    let held = std::net::UdpSocket::bind(("127.0.0.1", order)).unwrap();
    let bad = ok.replace("pipeline = 1 ", "pipeline = 4096 ");
    assert_ne!(bad, ok, "the example pins the pipeline core");
    let path = tmp.path().join("bad.toml");
    std::fs::write(&path, &bad).unwrap();
    let o = bourse(&["config", "check", "--config", path.to_str().unwrap()], tmp.path());
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("backend.bind") && t.contains("address in use"), "{t}");
    assert!(t.contains("cores.pipeline: core 4096"), "{t}");
    // `bourse run` refuses the same way before recovering anything.
    let o = bourse(&["run", "--config", path.to_str().unwrap(), "--duration-s", "1"], tmp.path());
    assert!(!o.status.success());
    assert!(text(&o).contains("backend.bind"), "{}", text(&o));
    drop(held);
}
