//! Hand-written bindings to rdma-core's libibverbs (rdma-core 44), and the RAII owners built on them.
//!
//! Only the verbs the mirror uses are declared. The data-path verbs (`ibv_post_send`, `ibv_post_recv`,
//! `ibv_poll_cq`) are static inline functions in `verbs.h` that call through `ibv_context.ops`; we call the same
//! function pointers, whose offsets are pinned below together with every struct size (checked against the C header
//! with `offsetof`/`sizeof` on rdma-core 44). Everything unsafe in the verbs transport is in this file.
#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr::{null_mut, NonNull};

pub const IBV_WR_RDMA_WRITE_WITH_IMM: u32 = 1;
pub const IBV_WR_SEND: u32 = 2;
pub const IBV_SEND_SIGNALED: u32 = 2;
pub const IBV_QPS_INIT: u32 = 1;
pub const IBV_QPS_RTR: u32 = 2;
pub const IBV_QPS_RTS: u32 = 3;
pub const IBV_QPT_RC: u32 = 2;
pub const IBV_ACCESS_LOCAL_WRITE: c_int = 1;
pub const IBV_ACCESS_REMOTE_WRITE: c_int = 2;
pub const IBV_QP_STATE: c_int = 1;
pub const IBV_QP_ACCESS_FLAGS: c_int = 8;
pub const IBV_QP_PKEY_INDEX: c_int = 16;
pub const IBV_QP_PORT: c_int = 32;
pub const IBV_QP_AV: c_int = 128;
pub const IBV_QP_PATH_MTU: c_int = 256;
pub const IBV_QP_TIMEOUT: c_int = 512;
pub const IBV_QP_RETRY_CNT: c_int = 1024;
pub const IBV_QP_RNR_RETRY: c_int = 2048;
pub const IBV_QP_RQ_PSN: c_int = 4096;
pub const IBV_QP_MAX_QP_RD_ATOMIC: c_int = 8192;
pub const IBV_QP_MIN_RNR_TIMER: c_int = 32768;
pub const IBV_QP_SQ_PSN: c_int = 65536;
pub const IBV_QP_MAX_DEST_RD_ATOMIC: c_int = 131072;
pub const IBV_QP_DEST_QPN: c_int = 1048576;
pub const IBV_MTU_1024: u32 = 3;
pub const IBV_WC_SUCCESS: u32 = 0;
pub const IBV_WC_RECV: u32 = 128;
pub const IBV_WC_RECV_RDMA_WITH_IMM: u32 = 129;

/// `enum ibv_wc_status` names, for errors a person reads (`ibv_wc_status_str` spelled the verbs.h way).
pub fn wc_status_name(status: u32) -> &'static str {
    const NAMES: [&str; 22] = [
        "IBV_WC_SUCCESS",
        "IBV_WC_LOC_LEN_ERR",
        "IBV_WC_LOC_QP_OP_ERR",
        "IBV_WC_LOC_EEC_OP_ERR",
        "IBV_WC_LOC_PROT_ERR",
        "IBV_WC_WR_FLUSH_ERR",
        "IBV_WC_MW_BIND_ERR",
        "IBV_WC_BAD_RESP_ERR",
        "IBV_WC_LOC_ACCESS_ERR",
        "IBV_WC_REM_INV_REQ_ERR",
        "IBV_WC_REM_ACCESS_ERR",
        "IBV_WC_REM_OP_ERR",
        "IBV_WC_RETRY_EXC_ERR",
        "IBV_WC_RNR_RETRY_EXC_ERR",
        "IBV_WC_LOC_RDD_VIOL_ERR",
        "IBV_WC_REM_INV_RD_REQ_ERR",
        "IBV_WC_REM_ABORT_ERR",
        "IBV_WC_INV_EECN_ERR",
        "IBV_WC_INV_EEC_STATE_ERR",
        "IBV_WC_FATAL_ERR",
        "IBV_WC_RESP_TIMEOUT_ERR",
        "IBV_WC_GENERAL_ERR",
    ];
    NAMES.get(status as usize).copied().unwrap_or("unknown ibv_wc_status")
}
pub const IBV_WC_RETRY_EXC_ERR: u32 = 12;

#[repr(C)]
pub struct ibv_device {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct ibv_pd {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct ibv_comp_channel {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct ibv_srq {
    _opaque: [u8; 0],
}

type PollCq = unsafe extern "C" fn(*mut ibv_cq, c_int, *mut ibv_wc) -> c_int;
type PostSend = unsafe extern "C" fn(*mut ibv_qp, *mut ibv_send_wr, *mut *mut ibv_send_wr) -> c_int;
type PostRecv = unsafe extern "C" fn(*mut ibv_qp, *mut ibv_recv_wr, *mut *mut ibv_recv_wr) -> c_int;

/// `struct ibv_context_ops`: only the three data-path entries are named.
#[repr(C)]
pub struct ibv_context_ops {
    _before_poll_cq: [usize; 11],
    pub poll_cq: Option<PollCq>,
    _before_post_send: [usize; 13],
    pub post_send: Option<PostSend>,
    pub post_recv: Option<PostRecv>,
    _after: [usize; 5],
}

/// `struct ibv_context`, up to the ops table (the rest is never read).
#[repr(C)]
pub struct ibv_context {
    pub device: *mut ibv_device,
    pub ops: ibv_context_ops,
}

#[repr(C)]
pub struct ibv_cq {
    pub context: *mut ibv_context,
}

#[repr(C)]
pub struct ibv_qp {
    pub context: *mut ibv_context,
    _ptrs: [usize; 5],
    pub handle: u32,
    pub qp_num: u32,
}

#[repr(C)]
pub struct ibv_mr {
    pub context: *mut ibv_context,
    pub pd: *mut ibv_pd,
    pub addr: *mut c_void,
    pub length: usize,
    pub handle: u32,
    pub lkey: u32,
    pub rkey: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ibv_sge {
    pub addr: u64,
    pub length: u32,
    pub lkey: u32,
}

/// `struct ibv_send_wr` with the `rdma` member of the `wr` union spelled out; the other union members are padding.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ibv_send_wr {
    pub wr_id: u64,
    pub next: *mut ibv_send_wr,
    pub sg_list: *mut ibv_sge,
    pub num_sge: c_int,
    pub opcode: u32,
    pub send_flags: u32,
    /// Network byte order.
    pub imm_data: u32,
    pub remote_addr: u64,
    pub rkey: u32,
    _wr_rest: [u32; 5],
    _qp_type: u32,
    _pad: u32,
    _tail: [u64; 6],
}

impl Default for ibv_send_wr {
    fn default() -> Self {
        ibv_send_wr {
            wr_id: 0,
            next: null_mut(),
            sg_list: null_mut(),
            num_sge: 0,
            opcode: 0,
            send_flags: 0,
            imm_data: 0,
            remote_addr: 0,
            rkey: 0,
            _wr_rest: [0; 5],
            _qp_type: 0,
            _pad: 0,
            _tail: [0; 6],
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ibv_recv_wr {
    pub wr_id: u64,
    pub next: *mut ibv_recv_wr,
    pub sg_list: *mut ibv_sge,
    pub num_sge: c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ibv_wc {
    pub wr_id: u64,
    pub status: u32,
    pub opcode: u32,
    pub vendor_err: u32,
    pub byte_len: u32,
    /// Network byte order.
    pub imm_data: u32,
    pub qp_num: u32,
    pub src_qp: u32,
    pub wc_flags: u32,
    pub pkey_index: u16,
    pub slid: u16,
    pub sl: u8,
    pub dlid_path_bits: u8,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ibv_qp_cap {
    pub max_send_wr: u32,
    pub max_recv_wr: u32,
    pub max_send_sge: u32,
    pub max_recv_sge: u32,
    pub max_inline_data: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ibv_qp_init_attr {
    pub qp_context: *mut c_void,
    pub send_cq: *mut ibv_cq,
    pub recv_cq: *mut ibv_cq,
    pub srq: *mut ibv_srq,
    pub cap: ibv_qp_cap,
    pub qp_type: u32,
    pub sq_sig_all: c_int,
}

/// `union ibv_gid`: 16 raw bytes, 8-byte aligned because of its `__be64` view.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ibv_gid {
    pub raw: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ibv_global_route {
    pub dgid: ibv_gid,
    pub flow_label: u32,
    pub sgid_index: u8,
    pub hop_limit: u8,
    pub traffic_class: u8,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ibv_ah_attr {
    pub grh: ibv_global_route,
    pub dlid: u16,
    pub sl: u8,
    pub src_path_bits: u8,
    pub static_rate: u8,
    pub is_global: u8,
    pub port_num: u8,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ibv_qp_attr {
    pub qp_state: u32,
    pub cur_qp_state: u32,
    pub path_mtu: u32,
    pub path_mig_state: u32,
    pub qkey: u32,
    pub rq_psn: u32,
    pub sq_psn: u32,
    pub dest_qp_num: u32,
    pub qp_access_flags: u32,
    pub cap: ibv_qp_cap,
    pub ah_attr: ibv_ah_attr,
    pub alt_ah_attr: ibv_ah_attr,
    pub pkey_index: u16,
    pub alt_pkey_index: u16,
    pub en_sqd_async_notify: u8,
    pub sq_draining: u8,
    pub max_rd_atomic: u8,
    pub max_dest_rd_atomic: u8,
    pub min_rnr_timer: u8,
    pub port_num: u8,
    pub timeout: u8,
    pub retry_cnt: u8,
    pub rnr_retry: u8,
    pub alt_port_num: u8,
    pub alt_timeout: u8,
    pub rate_limit: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ibv_port_attr {
    pub state: u32,
    pub max_mtu: u32,
    pub active_mtu: u32,
    pub gid_tbl_len: c_int,
    pub port_cap_flags: u32,
    pub max_msg_sz: u32,
    pub bad_pkey_cntr: u32,
    pub qkey_viol_cntr: u32,
    pub pkey_tbl_len: u16,
    pub lid: u16,
    pub sm_lid: u16,
    pub lmc: u8,
    pub max_vl_num: u8,
    pub sm_sl: u8,
    pub subnet_timeout: u8,
    pub init_type_reply: u8,
    pub active_width: u8,
    pub active_speed: u8,
    pub phys_state: u8,
    pub link_layer: u8,
    pub flags: u8,
    pub port_cap_flags2: u16,
}

// ABI pins: sizes and offsets as printed by a C program against rdma-core 44's verbs.h.
const _: () = assert!(size_of::<ibv_send_wr>() == 128);
const _: () = assert!(core::mem::offset_of!(ibv_send_wr, imm_data) == 36);
const _: () = assert!(core::mem::offset_of!(ibv_send_wr, remote_addr) == 40);
const _: () = assert!(size_of::<ibv_recv_wr>() == 32);
const _: () = assert!(size_of::<ibv_sge>() == 16);
const _: () = assert!(size_of::<ibv_wc>() == 48);
const _: () = assert!(core::mem::offset_of!(ibv_wc, imm_data) == 24);
const _: () = assert!(core::mem::offset_of!(ibv_wc, wc_flags) == 36);
const _: () = assert!(size_of::<ibv_qp_init_attr>() == 64);
const _: () = assert!(size_of::<ibv_ah_attr>() == 32);
const _: () = assert!(size_of::<ibv_qp_attr>() == 144);
const _: () = assert!(core::mem::offset_of!(ibv_qp_attr, ah_attr) == 56);
const _: () = assert!(core::mem::offset_of!(ibv_qp_attr, pkey_index) == 120);
const _: () = assert!(core::mem::offset_of!(ibv_qp_attr, rate_limit) == 136);
const _: () = assert!(size_of::<ibv_port_attr>() == 52);
const _: () = assert!(core::mem::offset_of!(ibv_port_attr, lid) == 34);
const _: () = assert!(size_of::<ibv_mr>() == 48);
const _: () = assert!(size_of::<ibv_context_ops>() == 256);
const _: () = assert!(core::mem::offset_of!(ibv_context, ops) == 8);
const _: () = assert!(core::mem::offset_of!(ibv_context_ops, poll_cq) == 88);
const _: () = assert!(core::mem::offset_of!(ibv_context_ops, post_send) == 200);
const _: () = assert!(core::mem::offset_of!(ibv_context_ops, post_recv) == 208);
const _: () = assert!(core::mem::offset_of!(ibv_qp, qp_num) == 52);

#[link(name = "ibverbs")]
extern "C" {
    fn ibv_get_device_list(num_devices: *mut c_int) -> *mut *mut ibv_device;
    fn ibv_free_device_list(list: *mut *mut ibv_device);
    fn ibv_get_device_name(device: *mut ibv_device) -> *const c_char;
    fn ibv_open_device(device: *mut ibv_device) -> *mut ibv_context;
    fn ibv_close_device(context: *mut ibv_context) -> c_int;
    fn ibv_query_port(context: *mut ibv_context, port_num: u8, port_attr: *mut ibv_port_attr) -> c_int;
    fn ibv_query_gid(context: *mut ibv_context, port_num: u8, index: c_int, gid: *mut ibv_gid) -> c_int;
    fn ibv_alloc_pd(context: *mut ibv_context) -> *mut ibv_pd;
    fn ibv_dealloc_pd(pd: *mut ibv_pd) -> c_int;
    fn ibv_reg_mr(pd: *mut ibv_pd, addr: *mut c_void, length: usize, access: c_int) -> *mut ibv_mr;
    fn ibv_dereg_mr(mr: *mut ibv_mr) -> c_int;
    fn ibv_create_cq(
        context: *mut ibv_context,
        cqe: c_int,
        cq_context: *mut c_void,
        channel: *mut ibv_comp_channel,
        comp_vector: c_int,
    ) -> *mut ibv_cq;
    fn ibv_destroy_cq(cq: *mut ibv_cq) -> c_int;
    fn ibv_create_qp(pd: *mut ibv_pd, attr: *mut ibv_qp_init_attr) -> *mut ibv_qp;
    fn ibv_destroy_qp(qp: *mut ibv_qp) -> c_int;
    fn ibv_modify_qp(qp: *mut ibv_qp, attr: *mut ibv_qp_attr, attr_mask: c_int) -> c_int;
}

/// Why the device list is empty or unavailable, with the errno libibverbs left.
#[derive(Debug)]
pub enum ListError {
    /// `ibv_get_device_list` returned NULL (ENOSYS when the kernel has no RDMA subsystem).
    Failed(std::io::Error),
    /// The list was returned but holds no device.
    Empty,
}

/// An open verbs device context; closes on drop.
pub struct Context(NonNull<ibv_context>);

/// Opens the device called `name`, or the first one when `name` is `None`. Returns the device names seen too, so
/// the caller's error can list them.
pub fn open_device(name: Option<&str>) -> Result<(Context, String), ListError> {
    let mut count: c_int = 0;
    // SAFETY: `count` is a valid out-pointer; the returned list is freed below on every path.
    let list = unsafe { ibv_get_device_list(&mut count) };
    if list.is_null() {
        return Err(ListError::Failed(std::io::Error::last_os_error()));
    }
    let mut chosen = None;
    for i in 0..count.max(0) as usize {
        // SAFETY: the list holds `count` valid device pointers.
        let dev = unsafe { *list.add(i) };
        // SAFETY: `dev` is a valid device; the name is a NUL-terminated string owned by it.
        let dev_name = unsafe { CStr::from_ptr(ibv_get_device_name(dev)) }.to_string_lossy().into_owned();
        if name.is_none_or(|n| n == dev_name) {
            chosen = Some((dev, dev_name));
            break;
        }
    }
    let result = match chosen {
        None => Err(ListError::Empty),
        Some((dev, dev_name)) => {
            // SAFETY: `dev` comes from the live list; opening it before freeing the list is the documented order.
            let ctx = unsafe { ibv_open_device(dev) };
            NonNull::new(ctx)
                .map(|c| (Context(c), dev_name))
                .ok_or_else(|| ListError::Failed(std::io::Error::last_os_error()))
        }
    };
    // SAFETY: `list` came from ibv_get_device_list and is freed exactly once.
    unsafe { ibv_free_device_list(list) };
    result
}

fn check(rc: c_int) -> Result<(), std::io::Error> {
    match rc {
        0 => Ok(()),
        // Verbs return either -1 with errno or a positive errno value.
        rc if rc > 0 => Err(std::io::Error::from_raw_os_error(rc)),
        _ => Err(std::io::Error::last_os_error()),
    }
}

impl Context {
    pub fn query_port(&self, port: u8) -> Result<ibv_port_attr, std::io::Error> {
        let mut attr = ibv_port_attr::default();
        // SAFETY: the context is open; `attr` is a zeroed full-size port_attr, as the inline wrapper passes.
        check(unsafe { ibv_query_port(self.0.as_ptr(), port, &mut attr) })?;
        Ok(attr)
    }
    pub fn query_gid(&self, port: u8, index: c_int) -> Result<ibv_gid, std::io::Error> {
        let mut gid = ibv_gid::default();
        // SAFETY: the context is open; `gid` is a valid out-pointer.
        check(unsafe { ibv_query_gid(self.0.as_ptr(), port, index, &mut gid) })?;
        Ok(gid)
    }
    pub fn alloc_pd(&self) -> Result<Pd, std::io::Error> {
        // SAFETY: the context is open and outlives the PD (the transport drops the PD first).
        NonNull::new(unsafe { ibv_alloc_pd(self.0.as_ptr()) }).map(Pd).ok_or_else(std::io::Error::last_os_error)
    }
    pub fn create_cq(&self, entries: c_int) -> Result<Cq, std::io::Error> {
        // SAFETY: the context is open; no completion channel (the CQ is busy-polled).
        let cq = unsafe { ibv_create_cq(self.0.as_ptr(), entries, null_mut(), null_mut(), 0) };
        NonNull::new(cq).map(Cq).ok_or_else(std::io::Error::last_os_error)
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: opened by ibv_open_device, closed once.
        unsafe { ibv_close_device(self.0.as_ptr()) };
    }
}

pub struct Pd(NonNull<ibv_pd>);

impl Drop for Pd {
    fn drop(&mut self) {
        // SAFETY: allocated by ibv_alloc_pd; every MR and QP on it is dropped before (field order in the owner).
        unsafe { ibv_dealloc_pd(self.0.as_ptr()) };
    }
}

/// Memory the NIC may write into at any time while a queue pair is connected: the standby's WAL mapping.
pub struct RegionLease {
    addr: *mut u8,
    len: usize,
}

impl RegionLease {
    /// # Safety
    /// `addr..addr+len` must be a live mapping that stays mapped, and is not reused for anything else, until the
    /// verbs transport it is given to has been dropped. Other code may read it (the standby validates records in
    /// place) but must expect its bytes to change underneath as remote writes land.
    pub unsafe fn new(addr: *mut u8, len: usize) -> RegionLease {
        RegionLease { addr, len }
    }
}

/// A registered memory region. Either it owns its buffer, or the caller vouched for borrowed memory.
pub struct Mr {
    mr: NonNull<ibv_mr>,
    _owned: Option<Box<[u8]>>,
}

impl Mr {
    /// Registers a buffer the MR owns, so it lives exactly as long as the registration.
    pub fn register_owned(pd: &Pd, mut buf: Box<[u8]>, access: c_int) -> Result<Mr, std::io::Error> {
        // SAFETY: the buffer is moved into the returned Mr and freed only after deregistration in Drop.
        let mr = unsafe { ibv_reg_mr(pd.0.as_ptr(), buf.as_mut_ptr().cast(), buf.len(), access) };
        NonNull::new(mr).map(|mr| Mr { mr, _owned: Some(buf) }).ok_or_else(std::io::Error::last_os_error)
    }

    /// Registers memory owned elsewhere (the standby's WAL mapping) for remote writes; the lease carries the
    /// promise that the memory outlives the registration.
    pub fn register_lease(pd: &Pd, lease: RegionLease, access: c_int) -> Result<Mr, std::io::Error> {
        // SAFETY: `RegionLease::new`'s contract guarantees the memory outlives the registration.
        let mr = unsafe { ibv_reg_mr(pd.0.as_ptr(), lease.addr.cast(), lease.len, access) };
        NonNull::new(mr).map(|mr| Mr { mr, _owned: None }).ok_or_else(std::io::Error::last_os_error)
    }

    fn raw(&self) -> &ibv_mr {
        // SAFETY: the pointer is valid from registration until Drop.
        unsafe { self.mr.as_ref() }
    }
    pub fn addr(&self) -> u64 {
        self.raw().addr as u64
    }
    pub fn len(&self) -> usize {
        self.raw().length
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn lkey(&self) -> u32 {
        self.raw().lkey
    }
    pub fn rkey(&self) -> u32 {
        self.raw().rkey
    }
    /// The owned buffer, for copying payloads in before posting and reading received bytes after completion.
    pub fn owned_mut(&mut self) -> Option<&mut [u8]> {
        self._owned.as_deref_mut()
    }
}

impl Drop for Mr {
    fn drop(&mut self) {
        // SAFETY: registered by ibv_reg_mr, deregistered once, before the owned buffer (if any) is freed.
        unsafe { ibv_dereg_mr(self.mr.as_ptr()) };
    }
}

pub struct Cq(NonNull<ibv_cq>);

impl Cq {
    /// Polls up to `wcs.len()` completions; returns how many were written.
    pub fn poll(&self, wcs: &mut [ibv_wc]) -> Result<usize, std::io::Error> {
        // SAFETY: the CQ is live, and its `context` is the device context it was created on, which outlives it:
        // the verbs transport keeps both in one Link, which drops the context last. The reference covers only the
        // `device` pointer and the ops table, which the library fills when it opens the device and never changes.
        let ctx = unsafe { &*(*self.0.as_ptr()).context };
        let poll = ctx.ops.poll_cq.ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOSYS))?;
        // SAFETY: `wcs` is a writable array of `wcs.len()` entries, as ibv_poll_cq requires.
        let n = unsafe { poll(self.0.as_ptr(), wcs.len() as c_int, wcs.as_mut_ptr()) };
        if n < 0 {
            return Err(std::io::Error::from_raw_os_error(-n));
        }
        Ok(n as usize)
    }
}

impl Drop for Cq {
    fn drop(&mut self) {
        // SAFETY: created by ibv_create_cq; the QP using it is dropped first.
        unsafe { ibv_destroy_cq(self.0.as_ptr()) };
    }
}

pub struct Qp(NonNull<ibv_qp>);

impl Qp {
    pub fn create_rc(pd: &Pd, cq: &Cq, cap: ibv_qp_cap) -> Result<Qp, std::io::Error> {
        let mut attr = ibv_qp_init_attr {
            qp_context: null_mut(),
            send_cq: cq.0.as_ptr(),
            recv_cq: cq.0.as_ptr(),
            srq: null_mut(),
            cap,
            qp_type: IBV_QPT_RC,
            sq_sig_all: 0,
        };
        // SAFETY: `pd` and `cq` are live and outlive the QP (owner field order); `attr` is fully initialised.
        NonNull::new(unsafe { ibv_create_qp(pd.0.as_ptr(), &mut attr) }).map(Qp).ok_or_else(std::io::Error::last_os_error)
    }
    pub fn qp_num(&self) -> u32 {
        // SAFETY: the QP is live.
        unsafe { (*self.0.as_ptr()).qp_num }
    }
    pub fn modify(&self, attr: &mut ibv_qp_attr, mask: c_int) -> Result<(), std::io::Error> {
        // SAFETY: the QP is live and `attr` is a fully initialised attribute block.
        check(unsafe { ibv_modify_qp(self.0.as_ptr(), attr, mask) })
    }

    /// Posts one send work request.
    ///
    /// # Safety
    /// Every `sg_list` entry must describe memory registered in an `Mr` that stays alive until the completion for
    /// this work request has been polled.
    pub unsafe fn post_send(&self, wr: &mut ibv_send_wr) -> Result<(), std::io::Error> {
        // SAFETY: as in `Cq::poll`: the QP is live and its context outlives it; only the immutable ops are read.
        let ctx = unsafe { &*(*self.0.as_ptr()).context };
        let post = ctx.ops.post_send.ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOSYS))?;
        let mut bad = null_mut();
        // SAFETY: `wr` is valid for the call; the caller guarantees the buffers it names.
        check(unsafe { post(self.0.as_ptr(), wr, &mut bad) })
    }

    /// Posts one receive work request.
    ///
    /// # Safety
    /// As for [`Qp::post_send`]: the buffers must stay registered and alive until the completion is polled.
    pub unsafe fn post_recv(&self, wr: &mut ibv_recv_wr) -> Result<(), std::io::Error> {
        // SAFETY: as in `Cq::poll`: the QP is live and its context outlives it; only the immutable ops are read.
        let ctx = unsafe { &*(*self.0.as_ptr()).context };
        let post = ctx.ops.post_recv.ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOSYS))?;
        let mut bad = null_mut();
        // SAFETY: `wr` is valid for the call; the caller guarantees the buffers it names.
        check(unsafe { post(self.0.as_ptr(), wr, &mut bad) })
    }
}

impl Drop for Qp {
    fn drop(&mut self) {
        // SAFETY: created by ibv_create_qp, destroyed once, before its CQ and PD.
        unsafe { ibv_destroy_qp(self.0.as_ptr()) };
    }
}

/// Builds the work request that writes `sge` to `remote_addr` and delivers `imm` (host order; converted to network
/// order here, as the verbs ABI wants) in the receiver's completion. Signaled, so the staging bytes can be reused
/// once it completes.
pub fn write_with_imm_wr(sge: &mut ibv_sge, wr_id: u64, remote_addr: u64, rkey: u32, imm: u32) -> ibv_send_wr {
    ibv_send_wr {
        wr_id,
        sg_list: sge,
        num_sge: 1,
        opcode: IBV_WR_RDMA_WRITE_WITH_IMM,
        send_flags: IBV_SEND_SIGNALED,
        imm_data: imm.to_be(),
        remote_addr,
        rkey,
        ..ibv_send_wr::default()
    }
}

/// Builds a signaled SEND of `sge` (control frames: acks, heartbeats, hellos, fences).
pub fn send_wr(sge: &mut ibv_sge, wr_id: u64) -> ibv_send_wr {
    ibv_send_wr { wr_id, sg_list: sge, num_sge: 1, opcode: IBV_WR_SEND, send_flags: IBV_SEND_SIGNALED, ..ibv_send_wr::default() }
}

/// Everything one RC connection owns. Field order is drop order: the QP goes first (flushing every posted work
/// request), then the CQ, the MRs, the PD and the device context — so no registered buffer is freed while the NIC
/// may still touch it, which is what makes the posting methods below safe. The fields are visible only to the
/// verbs transport, which keeps its Link whole, so no code elsewhere can move a buffer out from under the QP.
pub struct Link {
    pub(super) qp: Qp,
    pub(super) cq: Cq,
    /// Staging for outgoing bytes: write payloads and control frames.
    pub(super) send_mr: Mr,
    /// Receive slots for control frames sent to us.
    pub(super) recv_mr: Mr,
    // The last three are held only to be dropped in this order, never read.
    /// The remote-writable WAL region (standby only).
    #[allow(dead_code)]
    pub(super) region_mr: Option<Mr>,
    #[allow(dead_code)]
    pub(super) pd: Pd,
    #[allow(dead_code)]
    pub(super) ctx: Context,
}

impl Link {
    /// Posts `send_mr[off..off+len]` as an RDMA write with immediate to `remote_addr`.
    pub fn post_write_with_imm(&self, off: usize, len: usize, remote_addr: u64, rkey: u32, imm: u32, wr_id: u64) -> Result<(), std::io::Error> {
        assert!(off + len <= self.send_mr.len());
        let mut sge = ibv_sge { addr: self.send_mr.addr() + off as u64, length: len as u32, lkey: self.send_mr.lkey() };
        let mut wr = write_with_imm_wr(&mut sge, wr_id, remote_addr, rkey, imm);
        // SAFETY: the bytes are in `send_mr` (bounds asserted above), which this Link owns and frees only after its
        // QP is destroyed (field order), so they outlive the work request.
        unsafe { self.qp.post_send(&mut wr) }
    }
    /// Posts `send_mr[off..off+len]` as a SEND.
    pub fn post_send_bytes(&self, off: usize, len: usize, wr_id: u64) -> Result<(), std::io::Error> {
        assert!(off + len <= self.send_mr.len());
        let mut sge = ibv_sge { addr: self.send_mr.addr() + off as u64, length: len as u32, lkey: self.send_mr.lkey() };
        let mut wr = send_wr(&mut sge, wr_id);
        // SAFETY: as above.
        unsafe { self.qp.post_send(&mut wr) }
    }
    /// Posts receive slot `recv_mr[off..off+len]`; `wr_id` names the slot.
    pub fn post_recv_slot(&self, off: usize, len: usize, wr_id: u64) -> Result<(), std::io::Error> {
        assert!(off + len <= self.recv_mr.len());
        let mut sge = ibv_sge { addr: self.recv_mr.addr() + off as u64, length: len as u32, lkey: self.recv_mr.lkey() };
        let mut wr = ibv_recv_wr { wr_id, next: null_mut(), sg_list: &mut sge, num_sge: 1 };
        // SAFETY: the slot is in `recv_mr` (bounds asserted above), which this Link owns and frees only after its QP
        // is destroyed (field order), so it outlives the work request.
        unsafe { self.qp.post_recv(&mut wr) }
    }
}
