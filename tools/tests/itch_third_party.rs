//! The appliance's real ITCH 5.0 output, decoded by a parser nobody here wrote: PyPI's `itchfeed` (module `itch`,
//! pure Python; ci/setup.sh installs it), which reads Nasdaq's own sample-file framing, each message behind a
//! 2-byte big-endian length, exactly as MoldUDP64 message blocks carry them (MoldUDP64 1.00, "Message Blocks").
//!
//! The appliance runs in-process on loopback with `end_of_day_on_stop`, takes a seeded load (entries that rest,
//! execute, cancel and replace), and stops; the test captures every feed datagram, unwraps MoldUDP64 (checking the
//! sequence is contiguous), and hands the messages to the Python check, which decodes each with `itchfeed` and
//! checks what a feed handler relies on (TotalView-ITCH 5.0):
//!
//! - every message decodes, with the length the spec gives its type (sections 1–4);
//! - the day opens with System Event 'O' and closes with 'C', the last message (section 1.1);
//! - Stock Directory locates start at 1 and are unique; every order message names one (section 1.2.1);
//! - Order Reference Numbers are day-unique, from 1 and increasing, on Add and on Replace's new reference
//!   (sections 1.3, 1.4.5);
//! - executions, cancels, deletes and replaces name a live order and never take more than it shows (section 1.4);
//! - Match Numbers are day-unique (sections 1.4.1, 1.5.1);
//! - timestamps never go back;
//! - the book rebuilt from these messages alone is never crossed or locked after any message.
//!
//! The same datagrams, written to a pcap, are framed by tshark's MoldUDP64 dissector (MoldUDP64 1.00): it must
//! read the session, sequence, count and message lengths our decoder read, End of Session included.
//!
//! One test function on purpose: the pipeline busy-polls (see `load_demo.rs`).

mod support;

use std::io::Write;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

use bourse::demo::{demo_config, load_options, InProcess, TempDir};
use bourse::load::client::set_rcvbuf;
use bourse::load::run_load;
use bourse_nic::wire::moldudp64::Packet;
use serde_json::Value;
use support::pcap::{tshark_decode, tshark_installed, write_pcap};

const PYTHON_CHECK: &str = r#"
import json, sys
from itch.parser import MessageParser
from itch.messages import messages as kinds

path = sys.argv[1]
errors = []
def fail(i, what):
    if len(errors) < 20:
        errors.append(f"message {i + 1}: {what}")

counts = {}
locates = set()
orders = {}          # reference -> [locate, side, price, shares]
books = {}           # locate -> {'B': {price: shares}, 'S': {price: shares}}
last_ref = 0
matches = set()
last_ts = 0
first = last = None
max_orders = 0

def level(locate, side, price, delta):
    book = books.setdefault(locate, {b"B": {}, b"S": {}})[side]
    book[price] = book.get(price, 0) + delta
    if book[price] == 0:
        del book[price]

def uncrossed(i, locate):
    book = books.get(locate)
    if book and book[b"B"] and book[b"S"]:
        bid, ask = max(book[b"B"]), min(book[b"S"])
        if bid >= ask:
            fail(i, f"book of locate {locate} crossed or locked: bid {bid} >= ask {ask}")

def take(i, ref, shares, what):
    o = orders.get(ref)
    if o is None:
        fail(i, f"{what} of reference {ref}, which is not on the book")
        return None
    if shares > o[3]:
        fail(i, f"{what} of {shares} shares from reference {ref}, which shows {o[3]}")
        shares = o[3]
    o[3] -= shares
    level(o[0], o[1], o[2], -shares)
    if o[3] == 0:
        del orders[ref]
    return o

with open(path, "rb") as f:
    for i, m in enumerate(MessageParser().parse_file(f)):
        t = m.message_type
        counts[t.decode()] = counts.get(t.decode(), 0) + 1
        raw = m.to_bytes()
        if len(raw) != kinds[t].message_size:
            fail(i, f"type {t} is {len(raw)} bytes, the spec says {kinds[t].message_size}")
        if m.timestamp < last_ts:
            fail(i, f"timestamp {m.timestamp} before {last_ts}")
        last_ts = m.timestamp
        if first is None:
            first = m
        last = m
        if t == b"R":
            if m.stock_locate < 1 or m.stock_locate in locates:
                fail(i, f"stock locate {m.stock_locate} is 0 or repeated")
            locates.add(m.stock_locate)
        elif t in (b"A", b"F"):
            ref = m.order_reference_number
            if ref <= last_ref:
                fail(i, f"Add Order reference {ref} does not increase (last {last_ref})")
            last_ref = max(last_ref, ref)
            if m.stock_locate not in locates:
                fail(i, f"Add Order on locate {m.stock_locate}, which has no Stock Directory")
            orders[ref] = [m.stock_locate, m.buy_sell_indicator, m.price, m.shares]
            level(m.stock_locate, m.buy_sell_indicator, m.price, m.shares)
            uncrossed(i, m.stock_locate)
        elif t in (b"E", b"C"):
            if m.match_number in matches:
                fail(i, f"match number {m.match_number} repeated")
            matches.add(m.match_number)
            take(i, m.order_reference_number, m.executed_shares, "execution")
        elif t == b"X":
            take(i, m.order_reference_number, m.cancelled_shares, "cancel")
        elif t == b"D":
            o = orders.get(m.order_reference_number)
            if o is None:
                fail(i, f"delete of reference {m.order_reference_number}, which is not on the book")
            else:
                take(i, m.order_reference_number, o[3], "delete")
        elif t == b"U":
            old = orders.get(m.order_reference_number)
            if old is None:
                fail(i, f"replace of reference {m.order_reference_number}, which is not on the book")
                continue
            take(i, m.order_reference_number, old[3], "replace")
            new = m.new_order_reference_number
            if new <= last_ref:
                fail(i, f"replace's new reference {new} does not increase (last {last_ref})")
            last_ref = max(last_ref, new)
            orders[new] = [old[0], old[1], m.price, m.shares]
            level(old[0], old[1], m.price, m.shares)
            uncrossed(i, old[0])
        elif t == b"P":
            if m.match_number in matches:
                fail(i, f"match number {m.match_number} repeated")
            matches.add(m.match_number)
        max_orders = max(max_orders, len(orders))

if first is None or first.message_type != b"S" or first.event_code != b"O":
    fail(0, "the feed does not open with System Event 'O'")
if last is None or last.message_type != b"S" or last.event_code != b"C":
    fail(0, "the feed does not end with System Event 'C'")
print(json.dumps({"counts": counts, "locates": len(locates), "last_reference": last_ref, "matches": len(matches),
                  "resting_at_end": len(orders), "max_resting": max_orders, "errors": errors}))
sys.exit(1 if errors else 0)
"#;

fn python_has_itchfeed() -> Result<(), String> {
    let out = Command::new("python3").args(["-c", "import itch.parser"]).output().map_err(|e| format!("python3: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
fn itch_output_decodes_with_a_third_party_parser_and_rebuilds_an_uncrossed_book() {
    if let Err(why) = python_has_itchfeed() {
        println!("skipped: PyPI's itchfeed is not installed (ci/setup.sh installs it): {why}");
        return;
    }
    let wal = TempDir::new("bourse-itch-third-party").unwrap();
    let mut config = demo_config(wal.path(), "msync", None).unwrap();
    config.market_data.end_of_day_on_stop = true;
    let group = config.market_data.group;
    let md = UdpSocket::bind(group).unwrap();
    set_rcvbuf(&md, 16 << 20);
    md.set_read_timeout(Some(Duration::from_millis(500))).unwrap();

    let mut app = InProcess::start(&config, Duration::from_secs(20)).unwrap();
    let mut opts = load_options(&config, vec![3_000.0], Duration::from_millis(1_000), 23).unwrap();
    opts.md = None;
    opts.mix.resting = 200;
    let r = run_load(&opts).unwrap();
    assert_eq!(r.lost, 0, "{r:?}");
    let summary = app.stop_and_join().unwrap();
    assert_eq!(summary.outputs_unsent, 0, "{summary}");

    // Every datagram was sent before the stop returned; loopback delivers in order. The stream ends with End of
    // Session (count 0xFFFF) after the day's close.
    let mut itch = Vec::new();
    let mut datagrams = Vec::new();
    let (mut next, mut ended, mut messages) = (1u64, false, 0u64);
    let mut buf = [0u8; 9_000];
    while let Ok(n) = md.recv(&mut buf) {
        datagrams.push(buf[..n].to_vec());
        let p = Packet::new_checked(&buf[..n]).expect("a MoldUDP64 datagram");
        assert!(!ended, "nothing after End of Session");
        if p.is_end_of_session() {
            assert_eq!(p.sequence(), next, "End of Session names the next sequence");
            ended = true;
            continue;
        }
        assert_eq!(p.sequence(), next, "market data is contiguous on loopback");
        for m in p.messages() {
            itch.extend_from_slice(&(m.len() as u16).to_be_bytes());
            itch.extend_from_slice(m);
            messages += 1;
        }
        next += u64::from(p.count());
    }
    assert!(ended, "the stream ended with End of Session");
    let path = wal.path().join("feed.itch");
    std::fs::File::create(&path).unwrap().write_all(&itch).unwrap();

    let out = Command::new("python3")
        .args(["-c", PYTHON_CHECK])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "itchfeed's reading of the feed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(stdout.trim()).expect("the check prints JSON");
    let decoded: u64 = v["counts"].as_object().unwrap().values().map(|c| c.as_u64().unwrap()).sum();
    assert_eq!(decoded, messages, "itchfeed decoded every message: {v}");
    for t in ["S", "R", "H", "A", "E"] {
        assert!(v["counts"][t].as_u64().unwrap_or(0) > 0, "the run has {t} messages: {v}");
    }
    assert_eq!(v["locates"].as_u64(), Some(config.symbols.len() as u64), "{v}");
    println!("itchfeed read {messages} messages of {} sent orders: {v}", r.sent);

    if !tshark_installed() {
        println!("skipped: tshark is not installed (ci/setup.sh installs it): the feed's MoldUDP64 framing unchecked");
        return;
    }
    let pcap = wal.path().join("feed.pcap");
    let src = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 40_001);
    write_pcap(&pcap, src, group, &datagrams);
    let decoded = tshark_decode(&pcap, group.port()).expect("tshark runs");
    assert_eq!(decoded.len(), datagrams.len(), "tshark decoded every feed datagram");
    for (d, (session, sequence, count, lens)) in datagrams.iter().zip(&decoded) {
        let ours = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(session.as_bytes(), ours.session().trimmed(), "session");
        assert_eq!((*sequence, *count), (ours.sequence(), ours.count()), "header of {d:02x?}");
        let our_lens: Vec<usize> = if ours.is_end_of_session() { Vec::new() } else { ours.messages().map(<[u8]>::len).collect() };
        assert_eq!(lens, &our_lens, "message lengths");
    }
    assert_eq!(decoded.last().map(|d| d.2), Some(0xffff), "tshark reads the End of Session last");
    println!("tshark framed {} feed datagrams as we did", decoded.len());
}
