//! The XDP program that steers our traffic to the XSK socket, assembled from raw eBPF instructions (no clang, no
//! libbpf), and its attachment to the interface.
//!
//! The program, in pseudo-C (`ours` is the configured IPv4 address, `port` the configured UDP port):
//!
//! ```text
//!   if (data + 42 > data_end)                         return XDP_PASS;   // shorter than Eth+IPv4+UDP / Eth+ARP
//!   if (eth.type == ARP)  { if (arp.tpa != ours)      return XDP_PASS;   // requests and replies about us
//!                           goto redirect; }
//!   if (eth.type != IPv4)                             return XDP_PASS;
//!   if (ip.ver_ihl != 0x45)                           return XDP_PASS;   // options: left to the kernel
//!   if (ip.frag & (MF | offset))                      return XDP_PASS;   // fragments: left to the kernel
//!   if (ip.proto != UDP || udp.dst != port || ip.dst != ours)  return XDP_PASS;
//! redirect:
//!   return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);       // no socket on this queue → PASS
//! ```
//!
//! **ARP is ours.** ARP requests and replies whose target is our address are redirected and answered (or learnt)
//! by the backend, not the kernel: the appliance may run on an interface that has no address in the kernel, and
//! then the kernel would never answer for us. Everything else — other ports, other addresses, IP options,
//! fragments, ICMP — passes to the kernel untouched, so the host stays reachable on the same interface.
//!
//! Packet bytes are loaded in network order into little-endian registers, so constants compared against them
//! are byte-swapped here once (`be16_as_loaded`, `be32_as_loaded`).

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

use super::sys::{self, BpfInsn};
use super::Error;

/// XSKMAP slots: one per rx queue index we might bind.
pub const XSKMAP_ENTRIES_MAX: u32 = 64;
/// Verifier log kept when a load fails, for the error message.
const VERIFIER_LOG_BYTES: usize = 64 * 1024;

const XDP_PASS: i32 = 2;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const BPF_PSEUDO_MAP_FD: u8 = 1;

// Offsets into `struct xdp_md` and into the frame.
const MD_DATA: i16 = 0;
const MD_DATA_END: i16 = 4;
const MD_RX_QUEUE_INDEX: i16 = 16;
const ETH_TYPE: i16 = 12;
const IP_VER_IHL: i16 = 14;
const IP_FRAG: i16 = 20;
const IP_PROTO: i16 = 23;
const IP_DST: i16 = 30;
const UDP_DST: i16 = 36;
const ARP_TPA: i16 = 38;
/// Eth (14) + IPv4 without options (20) + UDP (8); Eth + ARP for IPv4 is exactly as long.
const HEADERS_BYTES: i32 = 42;

/// What a 16-bit big-endian field reads as after a little-endian `u16` load.
pub const fn be16_as_loaded(v: u16) -> i32 {
    u16::from_le_bytes(v.to_be_bytes()) as i32
}

/// What a 32-bit big-endian field reads as after a little-endian `u32` load, as a JMP32 immediate.
pub const fn be32_as_loaded(octets: [u8; 4]) -> i32 {
    i32::from_le_bytes(octets)
}

// Opcodes (class | op | source), from linux/bpf_common.h and linux/bpf.h.
const LDX_MEM_W: u8 = 0x61;
const LDX_MEM_H: u8 = 0x69;
const LDX_MEM_B: u8 = 0x71;
const ALU64_MOV_X: u8 = 0xbf;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_ADD_K: u8 = 0x07;
const ALU64_AND_K: u8 = 0x57;
const JMP_JA: u8 = 0x05;
const JMP_JEQ_K: u8 = 0x15;
const JMP_JNE_K: u8 = 0x55;
const JMP_JGT_X: u8 = 0x2d;
const JMP32_JNE_K: u8 = 0x56;
const JMP_CALL: u8 = 0x85;
const JMP_EXIT: u8 = 0x95;
const LD_IMM64: u8 = 0x18;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    Arp,
    Redirect,
    Pass,
}

const LABELS: usize = 3;

/// A tiny assembler: instructions plus forward jumps resolved once every label is placed.
struct Asm {
    insns: Vec<BpfInsn>,
    fixups: Vec<(usize, Label)>,
    labels: [Option<usize>; LABELS],
}

fn regs(dst: u8, src: u8) -> u8 {
    (src << 4) | (dst & 0x0f)
}

impl Asm {
    fn new() -> Asm {
        Asm {
            insns: Vec::with_capacity(64),
            fixups: Vec::with_capacity(16),
            labels: [None; LABELS],
        }
    }

    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(BpfInsn {
            code,
            regs: regs(dst, src),
            off,
            imm,
        });
    }

    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.op(code, dst, src, 0, imm);
    }

    fn place(&mut self, l: Label) {
        self.labels[l as usize] = Some(self.insns.len());
    }

    /// Resolves jumps; offsets count from the instruction after the jump.
    fn finish(mut self) -> Vec<BpfInsn> {
        for &(at, l) in &self.fixups {
            let target =
                self.labels[l as usize].unwrap_or_else(|| panic!("label {l:?} never placed"));
            assert!(target > at, "only forward jumps are emitted");
            self.insns[at].off = i16::try_from(target - at - 1).expect("jump within i16 range");
        }
        self.insns
    }
}

/// Assembles the steering program for `ours`:`port` redirecting into the XSKMAP `map_fd`.
pub fn program(map_fd: i32, ours: Ipv4Addr, port: u16) -> Vec<BpfInsn> {
    let ip = be32_as_loaded(ours.octets());
    let mut a = Asm::new();
    // r1 = ctx. r2 = data, r3 = data_end; r4 = data + 42 proves to the verifier that bytes 0..42 are readable.
    a.op(LDX_MEM_W, 2, 1, MD_DATA, 0);
    a.op(LDX_MEM_W, 3, 1, MD_DATA_END, 0);
    a.op(ALU64_MOV_X, 4, 2, 0, 0);
    a.op(ALU64_ADD_K, 4, 0, 0, HEADERS_BYTES);
    a.jump(JMP_JGT_X, 4, 3, 0, Label::Pass);
    a.op(LDX_MEM_H, 5, 2, ETH_TYPE, 0);
    a.jump(JMP_JEQ_K, 5, 0, be16_as_loaded(0x0806), Label::Arp);
    a.jump(JMP_JNE_K, 5, 0, be16_as_loaded(0x0800), Label::Pass);
    a.op(LDX_MEM_B, 5, 2, IP_VER_IHL, 0);
    a.jump(JMP_JNE_K, 5, 0, 0x45, Label::Pass);
    // More-fragments flag and fragment offset: the low 14 bits of the big-endian flags/offset field.
    a.op(LDX_MEM_H, 5, 2, IP_FRAG, 0);
    a.op(ALU64_AND_K, 5, 0, 0, be16_as_loaded(0x3fff));
    a.jump(JMP_JNE_K, 5, 0, 0, Label::Pass);
    a.op(LDX_MEM_B, 5, 2, IP_PROTO, 0);
    a.jump(JMP_JNE_K, 5, 0, 17, Label::Pass);
    a.op(LDX_MEM_H, 5, 2, UDP_DST, 0);
    a.jump(JMP_JNE_K, 5, 0, be16_as_loaded(port), Label::Pass);
    a.op(LDX_MEM_W, 5, 2, IP_DST, 0);
    a.jump(JMP32_JNE_K, 5, 0, ip, Label::Pass);
    a.jump(JMP_JA, 0, 0, 0, Label::Redirect);

    a.place(Label::Arp);
    a.op(LDX_MEM_W, 5, 2, ARP_TPA, 0);
    a.jump(JMP32_JNE_K, 5, 0, ip, Label::Pass);

    a.place(Label::Redirect);
    // bpf_redirect_map(map, key = ctx->rx_queue_index, flags = XDP_PASS): the low bits of flags are the action
    // when the key holds no socket, so traffic on a queue we are not bound to still reaches the kernel.
    a.op(LDX_MEM_W, 2, 1, MD_RX_QUEUE_INDEX, 0);
    a.op(LD_IMM64, 1, BPF_PSEUDO_MAP_FD, 0, map_fd);
    a.op(0, 0, 0, 0, 0);
    a.op(ALU64_MOV_K, 3, 0, 0, XDP_PASS);
    a.op(JMP_CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP);
    a.op(JMP_EXIT, 0, 0, 0, 0);

    a.place(Label::Pass);
    a.op(ALU64_MOV_K, 0, 0, 0, XDP_PASS);
    a.op(JMP_EXIT, 0, 0, 0, 0);
    a.finish()
}

/// Where the program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver, before an skb exists (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// After skb allocation, for drivers without XDP support (`XDP_FLAGS_SKB_MODE`).
    Generic,
}

/// The XSKMAP, the loaded program and the link attaching it. Dropping it detaches the program (field order:
/// the link closes first).
pub struct Attachment {
    _link: OwnedFd,
    _prog: OwnedFd,
    _map: OwnedFd,
    pub mode: AttachMode,
}

/// Loads the steering program, puts `xsk` in its map at `queue_id`, and attaches it to `ifindex` natively,
/// falling back to generic mode (or generic only when `force_generic`).
pub fn attach(
    ifindex: u32,
    ours: Ipv4Addr,
    port: u16,
    xsk: &OwnedFd,
    queue_id: u32,
    force_generic: bool,
) -> Result<Attachment, Error> {
    use std::os::fd::AsRawFd;
    if queue_id >= XSKMAP_ENTRIES_MAX {
        return Err(Error::Config("queue_id must be below the XSKMAP size (64)"));
    }
    let sys_err = |what: &'static str| move |source| Error::Sys { what, source };
    let map =
        sys::xskmap_create(XSKMAP_ENTRIES_MAX).map_err(sys_err("bpf(BPF_MAP_CREATE, XSKMAP)"))?;
    sys::xskmap_insert(&map, queue_id, xsk).map_err(sys_err("bpf(BPF_MAP_UPDATE_ELEM)"))?;
    let insns = program(map.as_raw_fd(), ours, port);
    let mut log = vec![0u8; VERIFIER_LOG_BYTES];
    let prog = sys::xdp_prog_load(&insns, &mut log).map_err(|source| {
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        Error::Verifier {
            source,
            log: String::from_utf8_lossy(&log[..end]).into_owned(),
        }
    })?;
    let native = if force_generic {
        None
    } else {
        match sys::xdp_link_create(&prog, ifindex, sys::XDP_FLAGS_DRV_MODE) {
            Ok(link) => {
                return Ok(Attachment {
                    _link: link,
                    _prog: prog,
                    _map: map,
                    mode: AttachMode::Native,
                })
            }
            Err(e) => Some(e),
        }
    };
    match sys::xdp_link_create(&prog, ifindex, sys::XDP_FLAGS_SKB_MODE) {
        Ok(link) => Ok(Attachment {
            _link: link,
            _prog: prog,
            _map: map,
            mode: AttachMode::Generic,
        }),
        Err(generic) => Err(Error::Attach { native, generic }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_of_constants() {
        // 0x0800 on the wire is bytes [08 00]; a little-endian load of them gives 0x0008.
        assert_eq!(be16_as_loaded(0x0800), 0x0008);
        assert_eq!(be16_as_loaded(0x0806), 0x0608);
        assert_eq!(be16_as_loaded(4000), 0xa00f);
        assert_eq!(be32_as_loaded([10, 77, 0, 1]), 0x0100_4d0a);
    }

    #[test]
    fn program_jumps_resolve_inside_the_program() {
        let p = program(7, Ipv4Addr::new(10, 77, 0, 1), 4000);
        let last = p.len() - 1;
        assert_eq!(p[last].code, JMP_EXIT);
        let mut jumps = 0;
        for (i, insn) in p.iter().enumerate() {
            let class = insn.code & 0x07;
            let is_jump =
                (class == 0x05 || class == 0x06) && insn.code != JMP_CALL && insn.code != JMP_EXIT;
            if is_jump {
                jumps += 1;
                let target = i as i64 + 1 + i64::from(insn.off);
                assert!(
                    target > i as i64 && target <= last as i64,
                    "insn {i} jumps to {target}"
                );
            }
        }
        assert_eq!(jumps, 10);
        // The map fd is carried by the first half of the 16-byte load, flagged as a map fd.
        let ld = p.iter().position(|i| i.code == LD_IMM64).expect("map load");
        assert_eq!(
            (p[ld].imm, p[ld].regs >> 4, p[ld + 1]),
            (7, BPF_PSEUDO_MAP_FD, BpfInsn::default())
        );
    }

    /// The kernel verifier is the real judge of the program; this needs CAP_BPF.
    #[test]
    fn verifier_accepts_program() {
        if !nix_is_root() {
            eprintln!("skipped: loading an XDP program needs root (CAP_BPF)");
            return;
        }
        let map = sys::xskmap_create(XSKMAP_ENTRIES_MAX).expect("create XSKMAP");
        use std::os::fd::AsRawFd;
        let insns = program(map.as_raw_fd(), Ipv4Addr::new(10, 77, 0, 1), 4000);
        let mut log = vec![0u8; VERIFIER_LOG_BYTES];
        if let Err(e) = sys::xdp_prog_load(&insns, &mut log) {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            panic!(
                "verifier refused the program: {e}\n{}",
                String::from_utf8_lossy(&log[..end])
            );
        }
    }

    fn nix_is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .map(|l| l.split_whitespace().nth(2) == Some("0"))
            })
            .unwrap_or(false)
    }
}
