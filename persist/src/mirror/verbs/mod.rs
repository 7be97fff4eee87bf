//! The mirror over RDMA verbs (feature `rdma`): one-sided writes into the standby's registered WAL region.
//!
//! The primary copies each `Write` frame's payload into a registered staging buffer and posts
//! `IBV_WR_RDMA_WRITE_WITH_IMM` to `remote_addr + offset % size` of the standby's landing ring, with the low 32 bits of the tail
//! seq as the immediate. RC queue pairs deliver writes in order and the immediate's completion comes after the
//! bytes, so when the standby polls a `RECV_RDMA_WITH_IMM` completion every record up to that seq is in its region;
//! the transport hands the protocol a `Tail` frame and the standby validates in place. The standby widens the 32-bit
//! immediate back to a full seq relative to its validated seq ([`crate::mirror::standby::expand_seq32`]): the
//! primary can never be 2^32 records ahead, so the wrap is unambiguous. Every other frame (Hello, Ack, Heartbeat,
//! Fence) travels by SEND into posted receive slots, in the same byte layout as over TCP.
//!
//! Connection set-up exchanges [`ConnParams`] (QPN, PSN, LID, GID, rkey, region address and size, epoch) over a
//! TCP side channel, then walks the QP through INIT → RTR → RTS. These VMs have no RDMA device and their kernel
//! cannot create soft-RoCE (PLATFORM.md), so [`open`] fails with [`TransportError::NoDevice`] naming what is
//! missing; `scripts/soft-roce.sh` sets up rxe where the kernel allows.

pub mod sys;

use std::io::{Read, Write};
use std::net::TcpStream;

use super::frame::{Frame, FRAME_MAX_BYTES, HEADER_BYTES};
use super::transport::{MirrorTransport, Sent, TransportError};
use sys::{ibv_qp_attr, ibv_qp_cap, ibv_wc, Link, ListError};

/// Bytes of encoded [`ConnParams`].
pub const PARAMS_BYTES: usize = 72;
const PARAMS_MAGIC: u32 = 0x4252_4d31; // "BRM1"
/// Control frames are at most this large (Hello); receive slots are this size.
pub const CONTROL_SLOT_BYTES: usize = 64;
/// Receive slots posted at once.
pub const RECV_SLOTS: usize = 256;
/// Send work requests outstanding at most (each payload uses one staging slot of the largest frame size).
pub const SEND_SLOTS: usize = 32;
const STAGING_SLOT_BYTES: usize = FRAME_MAX_BYTES;
const _: () = assert!(CONTROL_SLOT_BYTES >= 48);

/// What each side tells the other before connecting the queue pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnParams {
    pub qpn: u32,
    pub psn: u32,
    pub lid: u16,
    pub gid: [u8; 16],
    /// rkey of the standby's WAL region (0 from the primary, which exposes nothing).
    pub rkey: u32,
    /// Address of the standby's WAL region in the standby's address space.
    pub remote_addr: u64,
    pub region_size_bytes: u64,
    pub epoch: u64,
}

#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum ParamsError {
    #[error("connection parameters truncated: {0} bytes")]
    Truncated(usize),
    #[error("connection parameters magic {0:#010x} wrong")]
    Magic(u32),
    #[error("connection parameters crc mismatch")]
    Crc,
}

impl ConnParams {
    /// ```text
    ///  0      4      8      12     14   16          32     36          44          52          60     64     72
    ///  | magic| qpn  | psn  | lid  |zero|    gid    | rkey |remote_addr| region    |  epoch    | zero | crc  |zero|
    /// ```
    pub fn encode(&self) -> [u8; PARAMS_BYTES] {
        let mut b = [0u8; PARAMS_BYTES];
        b[0..4].copy_from_slice(&PARAMS_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&self.qpn.to_le_bytes());
        b[8..12].copy_from_slice(&self.psn.to_le_bytes());
        b[12..14].copy_from_slice(&self.lid.to_le_bytes());
        b[16..32].copy_from_slice(&self.gid);
        b[32..36].copy_from_slice(&self.rkey.to_le_bytes());
        b[36..44].copy_from_slice(&self.remote_addr.to_le_bytes());
        b[44..52].copy_from_slice(&self.region_size_bytes.to_le_bytes());
        b[52..60].copy_from_slice(&self.epoch.to_le_bytes());
        let crc = crc32c::crc32c(&b[..64]);
        b[64..68].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<ConnParams, ParamsError> {
        if b.len() < PARAMS_BYTES {
            return Err(ParamsError::Truncated(b.len()));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        if u32_at(0) != PARAMS_MAGIC {
            return Err(ParamsError::Magic(u32_at(0)));
        }
        if u32_at(64) != crc32c::crc32c(&b[..64]) {
            return Err(ParamsError::Crc);
        }
        let mut gid = [0u8; 16];
        gid.copy_from_slice(&b[16..32]);
        Ok(ConnParams {
            qpn: u32_at(4),
            psn: u32_at(8),
            lid: u16::from_le_bytes([b[12], b[13]]),
            gid,
            rkey: u32_at(32),
            remote_addr: u64_at(36),
            region_size_bytes: u64_at(44),
            epoch: u64_at(52),
        })
    }
}

/// Sends ours and reads theirs over the side channel (blocking; connection set-up only).
pub fn exchange_params(side: &mut TcpStream, mine: &ConnParams) -> Result<ConnParams, TransportError> {
    let io = |op| move |source| TransportError::Io { op, source };
    side.write_all(&mine.encode()).map_err(io("params write"))?;
    let mut buf = [0u8; PARAMS_BYTES];
    side.read_exact(&mut buf).map_err(io("params read"))?;
    ConnParams::decode(&buf).map_err(|e| TransportError::Verbs { verb: "params exchange", detail: e.to_string() })
}

fn verbs_err(verb: &'static str) -> impl FnOnce(std::io::Error) -> TransportError {
    move |e| TransportError::Verbs { verb, detail: e.to_string() }
}

/// Opens the named (or first) RDMA device, or says plainly that there is none.
pub fn open(device: Option<&str>) -> Result<(sys::Context, String), TransportError> {
    sys::open_device(device).map_err(|e| match e {
        ListError::Failed(err) if err.raw_os_error() == Some(libc::ENOSYS) => TransportError::NoDevice(format!(
            "ibv_get_device_list failed: {err}; this kernel has no RDMA subsystem (CONFIG_INFINIBAND), so no verbs \
             device, soft-RoCE (rdma_rxe) included, can exist here; use the tcp transport"
        )),
        ListError::Failed(err) => TransportError::NoDevice(format!("ibv_get_device_list / ibv_open_device failed: {err}")),
        ListError::Empty => TransportError::NoDevice(format!(
            "no RDMA device{} found; load rdma_rxe and add an rxe link (scripts/soft-roce.sh) or use the tcp transport",
            device.map(|d| format!(" named {d}")).unwrap_or_default()
        )),
    })
}

/// Which side of the mirror this endpoint is.
pub enum Role {
    Primary,
    /// The standby exposes its WAL region for remote writes (the appliance creates the lease over the WAL's
    /// mapping, promising it outlives the transport).
    Standby(sys::RegionLease),
}

/// The verbs transport: one RC queue pair, busy-polled.
pub struct VerbsTransport {
    link: Link,
    remote: ConnParams,
    epoch: u64,
    send_next: usize,
    sends_outstanding: usize,
    /// The first failed completion (status, vendor error): the QP is in ERROR from then on.
    failed: Option<(u32, u32)>,
    wcs: [ibv_wc; 16],
}

fn qp_failed(status: u32, vendor_err: u32) -> TransportError {
    TransportError::QueuePair { status, status_name: sys::wc_status_name(status), vendor_err }
}

impl VerbsTransport {
    /// Opens the device, registers memory, exchanges parameters over `side` and connects the queue pair.
    pub fn connect(device: Option<&str>, port: u8, gid_index: i32, role: Role, epoch: u64, side: &mut TcpStream) -> Result<VerbsTransport, TransportError> {
        let (ctx, _name) = open(device)?;
        let port_attr = ctx.query_port(port).map_err(verbs_err("ibv_query_port"))?;
        let gid = ctx.query_gid(port, gid_index).map_err(verbs_err("ibv_query_gid"))?;
        let pd = ctx.alloc_pd().map_err(verbs_err("ibv_alloc_pd"))?;
        let cq = ctx.create_cq((SEND_SLOTS + RECV_SLOTS) as i32).map_err(verbs_err("ibv_create_cq"))?;
        let local = sys::IBV_ACCESS_LOCAL_WRITE;
        let send_mr = sys::Mr::register_owned(&pd, vec![0u8; SEND_SLOTS * STAGING_SLOT_BYTES].into_boxed_slice(), local)
            .map_err(verbs_err("ibv_reg_mr"))?;
        let recv_mr = sys::Mr::register_owned(&pd, vec![0u8; RECV_SLOTS * CONTROL_SLOT_BYTES].into_boxed_slice(), local)
            .map_err(verbs_err("ibv_reg_mr"))?;
        let (region_mr, region) = match role {
            Role::Primary => (None, (0u64, 0u32, 0u64)),
            Role::Standby(lease) => {
                let mr = sys::Mr::register_lease(&pd, lease, local | sys::IBV_ACCESS_REMOTE_WRITE)
                    .map_err(verbs_err("ibv_reg_mr"))?;
                let r = (mr.addr(), mr.rkey(), mr.len() as u64);
                (Some(mr), r)
            }
        };
        let cap = ibv_qp_cap { max_send_wr: SEND_SLOTS as u32, max_recv_wr: RECV_SLOTS as u32, max_send_sge: 1, max_recv_sge: 1, max_inline_data: 0 };
        let qp = sys::Qp::create_rc(&pd, &cq, cap).map_err(verbs_err("ibv_create_qp"))?;
        let psn = (epoch as u32).wrapping_mul(0x9e37_79b9) & 0x00ff_ffff;
        let mine = ConnParams { qpn: qp.qp_num(), psn, lid: port_attr.lid, gid: gid.raw, rkey: region.1, remote_addr: region.0, region_size_bytes: region.2, epoch };
        let link = Link { qp, cq, send_mr, recv_mr, region_mr, pd, ctx };
        let remote = exchange_params(side, &mine)?;
        if remote.epoch != epoch {
            return Err(TransportError::Verbs { verb: "params exchange", detail: format!("peer epoch {} != ours {epoch}", remote.epoch) });
        }
        for (step, (state, mut attr, mask)) in qp_transitions(port, gid_index as u8, &mine, &remote).into_iter().enumerate() {
            link.qp.modify(&mut attr, mask).map_err(|e| TransportError::Verbs { verb: state, detail: e.to_string() })?;
            if step == RECV_POST_AFTER_STEP {
                // A QP takes receive work requests from INIT on (in RESET rxe answers EINVAL), and they must be
                // there before RTR, when the peer's first SEND may arrive.
                for slot in 0..RECV_SLOTS {
                    link.post_recv_slot(slot * CONTROL_SLOT_BYTES, CONTROL_SLOT_BYTES, slot as u64).map_err(verbs_err("ibv_post_recv"))?;
                }
            }
        }
        Ok(VerbsTransport { link, remote, epoch, send_next: 0, sends_outstanding: 0, failed: None, wcs: [ibv_wc::default(); 16] })
    }
}

/// Index in [`qp_transitions`] of the step (RESET → INIT) after which the receive slots are posted.
pub const RECV_POST_AFTER_STEP: usize = 0;
/// Transport retries of an unacknowledged packet before the QP fails with `IBV_WC_RETRY_EXC_ERR`: 6 retries at a
/// `timeout` of 14 (4.096 µs × 2^14 ≈ 67 ms each) report a vanished peer within about half a second. 7 would mean
/// the same bound for `retry_cnt` (only `rnr_retry` = 7 means "forever"), but 6 keeps the bound obvious.
pub const RETRY_COUNT: u8 = 6;
/// Local ACK timeout exponent (4.096 µs × 2^14 ≈ 67 ms): generous enough for soft-RoCE under emulation.
pub const ACK_TIMEOUT_EXP: u8 = 14;

impl VerbsTransport {
    /// Why the queue pair failed, once a completion has failed (the transport is disconnected from then on).
    pub fn failure(&self) -> Option<TransportError> {
        self.failed.map(|(status, vendor_err)| qp_failed(status, vendor_err))
    }
}

/// The three `ibv_modify_qp` steps of an RC queue pair: RESET → INIT (port, access), INIT → RTR (path to the
/// remote QPN, its PSN, MTU, address vector with GID for RoCE), RTR → RTS (our PSN, timeouts and retries).
pub fn qp_transitions(port: u8, gid_index: u8, mine: &ConnParams, remote: &ConnParams) -> [(&'static str, ibv_qp_attr, i32); 3] {
    use sys::*;
    let init = ibv_qp_attr { qp_state: IBV_QPS_INIT, port_num: port, pkey_index: 0, qp_access_flags: (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE) as u32, ..Default::default() };
    let mut rtr = ibv_qp_attr {
        qp_state: IBV_QPS_RTR,
        path_mtu: IBV_MTU_1024,
        dest_qp_num: remote.qpn,
        rq_psn: remote.psn,
        max_dest_rd_atomic: 1,
        min_rnr_timer: 12,
        ..Default::default()
    };
    rtr.ah_attr.dlid = remote.lid;
    rtr.ah_attr.port_num = port;
    rtr.ah_attr.is_global = 1;
    rtr.ah_attr.grh.dgid.raw = remote.gid;
    rtr.ah_attr.grh.sgid_index = gid_index;
    rtr.ah_attr.grh.hop_limit = 1;
    let rts = ibv_qp_attr { qp_state: IBV_QPS_RTS, sq_psn: mine.psn, timeout: ACK_TIMEOUT_EXP, retry_cnt: RETRY_COUNT, rnr_retry: 7, max_rd_atomic: 1, ..Default::default() };
    [
        ("ibv_modify_qp(INIT)", init, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS),
        (
            "ibv_modify_qp(RTR)",
            rtr,
            IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER,
        ),
        ("ibv_modify_qp(RTS)", rts, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC),
    ]
}

impl MirrorTransport for VerbsTransport {
    fn send(&mut self, frame: &[u8]) -> Result<Sent, TransportError> {
        if self.failed.is_some() {
            return Err(TransportError::Disconnected);
        }
        if self.sends_outstanding >= SEND_SLOTS {
            return Ok(Sent::Full);
        }
        let slot = self.send_next;
        let off = slot * STAGING_SLOT_BYTES;
        let staging = self.link.send_mr.owned_mut().ok_or(TransportError::Disconnected)?;
        match Frame::parse(frame) {
            Ok(Frame::Write { offset, tail_seq, bytes, .. }) => {
                let ring = self.remote.region_size_bytes;
                if ring == 0 || bytes.len() as u64 > ring {
                    return Err(TransportError::FrameTooLarge { len_bytes: bytes.len(), max_bytes: ring as usize });
                }
                // The standby's region is a ring indexed by stream offset: a write that runs past its end continues
                // at its start, as a second write (RC delivers them in order, so the second notice covers both).
                let at = offset % ring;
                let first = bytes.len().min((ring - at) as usize);
                if first < bytes.len() && self.sends_outstanding + 2 > SEND_SLOTS {
                    return Ok(Sent::Full);
                }
                staging[off..off + bytes.len()].copy_from_slice(bytes);
                // The immediate carries the low 32 bits of the tail seq; the standby widens it (see module docs).
                self.link
                    .post_write_with_imm(off, first, self.remote.remote_addr + at, self.remote.rkey, tail_seq as u32, slot as u64)
                    .map_err(verbs_err("ibv_post_send(RDMA_WRITE_WITH_IMM)"))?;
                if first < bytes.len() {
                    self.link
                        .post_write_with_imm(off + first, bytes.len() - first, self.remote.remote_addr, self.remote.rkey, tail_seq as u32, slot as u64)
                        .map_err(verbs_err("ibv_post_send(RDMA_WRITE_WITH_IMM)"))?;
                    self.sends_outstanding += 1;
                }
            }
            _ if frame.len() <= CONTROL_SLOT_BYTES => {
                staging[off..off + frame.len()].copy_from_slice(frame);
                self.link.post_send_bytes(off, frame.len(), slot as u64).map_err(verbs_err("ibv_post_send(SEND)"))?;
            }
            _ => return Err(TransportError::FrameTooLarge { len_bytes: frame.len(), max_bytes: CONTROL_SLOT_BYTES }),
        }
        self.send_next = (self.send_next + 1) % SEND_SLOTS;
        self.sends_outstanding += 1;
        Ok(Sent::Queued)
    }

    fn poll(&mut self, on_frame: &mut dyn FnMut(&[u8])) -> Result<usize, TransportError> {
        if self.failed.is_some() {
            return Ok(0);
        }
        let n = self.link.cq.poll(&mut self.wcs).map_err(verbs_err("ibv_poll_cq"))?;
        let mut delivered = 0;
        let mut tail = [0u8; HEADER_BYTES + 8];
        for i in 0..n {
            let wc = self.wcs[i];
            if wc.status != sys::IBV_WC_SUCCESS {
                // The QP is in ERROR now and stays there. The failure is reported once; from then on the link
                // behaves as disconnected (sends refused, nothing received), so a standby sees a silent primary and
                // promotes, and a primary stops acknowledging under `ack = mirrored`. Reconnecting means a new
                // transport ([`VerbsTransport::failure`] says why).
                self.failed = Some((wc.status, wc.vendor_err));
                return Err(qp_failed(wc.status, wc.vendor_err));
            }
            match wc.opcode {
                sys::IBV_WC_RECV_RDMA_WITH_IMM => {
                    let len = Frame::Tail { epoch: self.epoch, tail_seq: u32::from_be(wc.imm_data) as u64 }
                        .emit(&mut tail)
                        .map_err(|e| TransportError::Verbs { verb: "tail notice", detail: e.to_string() })?;
                    on_frame(&tail[..len]);
                    delivered += 1;
                }
                sys::IBV_WC_RECV => {
                    let slot = wc.wr_id as usize % RECV_SLOTS;
                    let off = slot * CONTROL_SLOT_BYTES;
                    let len = (wc.byte_len as usize).min(CONTROL_SLOT_BYTES);
                    let buf = self.link.recv_mr.owned_mut().ok_or(TransportError::Disconnected)?;
                    on_frame(&buf[off..off + len]);
                    delivered += 1;
                }
                // Send and write completions free a staging slot.
                _ => {
                    self.sends_outstanding = self.sends_outstanding.saturating_sub(1);
                    continue;
                }
            }
            let slot = wc.wr_id as usize % RECV_SLOTS;
            self.link
                .post_recv_slot(slot * CONTROL_SLOT_BYTES, CONTROL_SLOT_BYTES, slot as u64)
                .map_err(verbs_err("ibv_post_recv"))?;
        }
        Ok(delivered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ConnParams {
        ConnParams {
            qpn: 0x11,
            psn: 0x00ab_cdef,
            lid: 7,
            gid: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8],
            rkey: 0x1234,
            remote_addr: 0x7f00_0000_1000,
            region_size_bytes: 1 << 30,
            epoch: 3,
        }
    }

    #[test]
    fn test_params_round_trip_and_damage() {
        let p = params();
        let b = p.encode();
        assert_eq!(ConnParams::decode(&b), Ok(p));
        assert_eq!(ConnParams::decode(&b[..10]), Err(ParamsError::Truncated(10)));
        for i in 0..68 {
            let mut c = b;
            c[i] ^= 0x04;
            assert!(ConnParams::decode(&c).is_err(), "byte {i}");
        }
    }

    #[test]
    fn test_params_exchange_over_side_channel() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let theirs = ConnParams { qpn: 0x22, rkey: 0, remote_addr: 0, ..params() };
        let peer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            exchange_params(&mut s, &theirs).unwrap()
        });
        let mut s = TcpStream::connect(addr).unwrap();
        let got = exchange_params(&mut s, &params()).unwrap();
        assert_eq!(got, theirs);
        assert_eq!(peer.join().unwrap(), params());
    }

    #[test]
    fn test_write_with_imm_work_request() {
        let mut sge = sys::ibv_sge { addr: 0x1000, length: 640, lkey: 9 };
        let tail_seq: u64 = 0x1_2345_6789;
        let wr = sys::write_with_imm_wr(&mut sge, 5, 0x7f00_0000_1000 + 4096, 0x1234, tail_seq as u32);
        assert_eq!(wr.opcode, sys::IBV_WR_RDMA_WRITE_WITH_IMM);
        assert_eq!(wr.send_flags, sys::IBV_SEND_SIGNALED);
        assert_eq!(wr.num_sge, 1);
        assert_eq!(wr.remote_addr, 0x7f00_0000_2000);
        assert_eq!(wr.rkey, 0x1234);
        assert_eq!(wr.imm_data.to_ne_bytes(), [0x23, 0x45, 0x67, 0x89], "immediate is big-endian low 32 bits");
        assert_eq!(crate::mirror::standby::expand_seq32(0x1_2345_0000, u32::from_be(wr.imm_data)), tail_seq);
        let s = sys::send_wr(&mut sge, 6);
        assert_eq!((s.opcode, s.wr_id, s.num_sge), (sys::IBV_WR_SEND, 6, 1));
    }

    #[test]
    fn test_qp_transitions_carry_remote_parameters() {
        let mine = params();
        let remote = ConnParams { qpn: 0x99, psn: 0x42, lid: 3, ..params() };
        let [(_, init, init_mask), (_, rtr, rtr_mask), (_, rts, rts_mask)] = qp_transitions(1, 0, &mine, &remote);
        assert_eq!(init.qp_state, sys::IBV_QPS_INIT);
        assert_eq!(init_mask & sys::IBV_QP_ACCESS_FLAGS, sys::IBV_QP_ACCESS_FLAGS);
        assert_eq!((rtr.qp_state, rtr.dest_qp_num, rtr.rq_psn, rtr.ah_attr.dlid), (sys::IBV_QPS_RTR, 0x99, 0x42, 3));
        assert_eq!(rtr.ah_attr.grh.dgid.raw, remote.gid);
        assert_ne!(rtr_mask & sys::IBV_QP_DEST_QPN, 0);
        assert_eq!((rts.qp_state, rts.sq_psn), (sys::IBV_QPS_RTS, mine.psn));
        assert_ne!(rts_mask & sys::IBV_QP_SQ_PSN, 0);
        // A vanished peer must end in IBV_WC_RETRY_EXC_ERR after a bounded number of retries.
        assert_eq!((rts.retry_cnt, rts.timeout), (6, 14));
        assert_ne!(rts_mask & sys::IBV_QP_RETRY_CNT, 0);
    }

    #[test]
    fn test_receives_are_posted_after_init_before_rtr() {
        // Regression (found on soft-RoCE): receives posted in RESET fail with EINVAL; they are accepted from INIT.
        let steps = qp_transitions(1, 1, &params(), &params());
        assert_eq!(steps[RECV_POST_AFTER_STEP].1.qp_state, sys::IBV_QPS_INIT);
        assert_eq!(steps[RECV_POST_AFTER_STEP + 1].1.qp_state, sys::IBV_QPS_RTR);
    }

    #[test]
    fn test_queue_pair_error_names_the_status() {
        let e = qp_failed(sys::IBV_WC_RETRY_EXC_ERR, 0x81);
        assert!(matches!(e, TransportError::QueuePair { status: 12, .. }));
        let msg = e.to_string();
        assert!(msg.contains("IBV_WC_RETRY_EXC_ERR (12)") && msg.contains("0x81"), "{msg}");
        assert_eq!(sys::wc_status_name(5), "IBV_WC_WR_FLUSH_ERR");
        assert_eq!(sys::wc_status_name(99), "unknown ibv_wc_status");
    }

    #[test]
    fn test_open_without_device_is_a_clear_error() {
        match open(None) {
            Ok((_, name)) => eprintln!("skipped: an RDMA device ({name}) exists here, so the no-device error cannot be shown"),
            Err(TransportError::NoDevice(msg)) => {
                eprintln!("no-device error as reported: {msg}");
                assert!(msg.contains("RDMA"), "{msg}");
            }
            Err(other) => panic!("expected NoDevice, got {other}"),
        }
    }
}
