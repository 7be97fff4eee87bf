//! Snapshots: a compact little-endian encoding of all logical state, and its validating decoder.
//!
//! ```text
//!   magic "BRSENGN1" | version u32 | capacity | clocks & counters | market-wide breaker
//!   | sessions × sessions_max | accounts × accounts_max | positions × (accounts_max × symbols_max)
//!   | symbols × symbols_max | order slots × orders_max (generation + location, fields when open)
//!   | free list (stack order) | per symbol: buy book, sell book, buy stops, sell stops, halt queue
//! ```
//!
//! Books, stop books and queues are written as handle sequences in priority order (price, then FIFO), so restore
//! rebuilds the intrusive lists, aggregates and bitmaps instead of trusting them, and the free list keeps its
//! order so that the restored engine hands out the same order references. The UserRef table is rebuilt from the
//! open orders. No checksum: the persistence layer adds its CRC around these bytes. Restore validates every field
//! and finishes with [`Engine::check_invariants`]; it never panics on garbage.

use crate::breaker;
use crate::engine::{side_index, Engine, Session, SnapshotError, Symbol};
use crate::ladder::List;
use crate::risk::{Account, Position};
use crate::slab::{Loc, Order, NIL};
use crate::{AddSymbol, Bands, Capacity, MarketBreaker, OrderKind, SelfTrade, Side, TimeInForce};

const MAGIC: &[u8; 8] = b"BRSENGN1";
/// 2: open orders carry their chain's executed shares after their quantity. 3: accounts carry their self-trade
/// prevention after the firm (a version-2 snapshot restores with the default, the only choice it knew). 4: sessions
/// carry their order-entry switch after the last UserRefNum (older snapshots restore with entry enabled, the only
/// state they knew).
const VERSION: u32 = 4;

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u128(&mut self, v: u128) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
}

impl R<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let s = self
            .b
            .get(self.at..self.at + N)
            .ok_or(SnapshotError::Truncated { offset: self.at })?;
        self.at += N;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, SnapshotError> {
        Ok(u16::from_le_bytes(self.take()?))
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.take()?))
    }
    fn u128(&mut self) -> Result<u128, SnapshotError> {
        Ok(u128::from_le_bytes(self.take()?))
    }
    fn bool(&mut self, what: &'static str) -> Result<bool, SnapshotError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.corrupt(what)),
        }
    }
    fn corrupt(&self, what: &'static str) -> SnapshotError {
        SnapshotError::Corrupt {
            offset: self.at,
            what,
        }
    }
}

fn side_code(s: Side) -> u8 {
    s as u8
}
fn side_from(v: u8) -> Option<Side> {
    [Side::Buy, Side::Sell].get(v as usize).copied()
}
fn kind_from(v: u8) -> Option<OrderKind> {
    [
        OrderKind::Limit,
        OrderKind::Market,
        OrderKind::Stop,
        OrderKind::StopLimit,
    ]
    .get(v as usize)
    .copied()
}
fn tif_from(v: u8) -> Option<TimeInForce> {
    [TimeInForce::Day, TimeInForce::Ioc, TimeInForce::Fok]
        .get(v as usize)
        .copied()
}

/// Bytes per element of the fixed sections, to check a snapshot is long enough before allocating for it.
/// The least a session takes (version 4 adds a byte): a lower bound for the size check, like the others.
const SESSION_BYTES: usize = 8;
const ACCOUNT_BYTES: usize = 35;
const POSITION_BYTES: usize = 16;
const SYMBOL_BYTES_MIN: usize = 1;
const SLOT_BYTES_MIN: usize = 5;

impl Engine {
    /// Serialises the whole state (off the hot path: allocation allowed).
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = W(out);
        w.0.extend_from_slice(MAGIC);
        w.u32(VERSION);
        let c = self.cap;
        w.u32(c.orders_max);
        w.u16(c.symbols_max);
        w.u32(c.accounts_max);
        w.u16(c.sessions_max);
        w.u32(c.levels_per_symbol);
        w.u32(c.halt_queue_max);
        w.u32(c.matches_per_order_max);
        w.u64(self.last_seq);
        w.u64(self.now);
        w.u64(self.match_number);
        let m = &self.market;
        w.u8(m.config.is_some() as u8);
        let cfg = m.config.unwrap_or(MarketBreaker {
            level_bps: [0; 3],
            halt_ns: [0; 3],
        });
        for i in 0..3 {
            w.u32(cfg.level_bps[i]);
            w.u64(cfg.halt_ns[i]);
            w.u8(m.fired[i] as u8);
        }
        w.u128(m.index_reference);
        w.u128(m.index_now);
        for s in &self.sessions {
            w.u32(s.account);
            w.u32(s.last_user_ref);
            w.u8(s.entry_disabled as u8);
        }
        for a in &self.accounts {
            w.u8(a.exists as u8);
            w.u16(a.firm);
            w.u8(a.self_trade.code());
            w.u32(a.short_limit);
            w.u32(a.max_order_qty);
            w.i64(a.max_order_notional);
            w.i64(a.cash_total);
            w.i64(a.cash_locked);
        }
        for p in &self.positions {
            w.i64(p.total);
            w.i64(p.locked);
        }
        for s in &self.symbols {
            w.u8(s.exists as u8);
            if !s.exists {
                continue;
            }
            let c = &s.config;
            w.u32(c.reference_price);
            w.u32(c.ladder_min_price);
            w.u32(c.tick);
            w.u32(c.bands.high_bps);
            w.u32(c.bands.mid_bps);
            w.u32(c.bands.low_bps);
            w.u32(c.bands.tier_high_price);
            w.u32(c.bands.tier_low_price);
            w.u64(c.bands.halt_ns);
            w.u32(c.market_collar_bps);
            w.u32(c.index_weight);
            w.u32(s.last_price);
            w.u8(s.halted as u8);
            w.u64(s.halt_until);
        }
        for o in &self.slab.orders {
            w.u32(o.gen);
            w.u8(o.loc as u8);
            if o.loc == Loc::Free {
                continue;
            }
            w.u32(o.account);
            w.u32(o.user_ref);
            w.u32(o.qty);
            w.u32(o.executed);
            w.u32(o.price);
            w.u32(o.stop_price);
            w.u32(o.lock_price);
            w.u16(o.session);
            w.u16(o.symbol);
            w.u8(side_code(o.side));
            w.u8(o.kind as u8);
            w.u8(o.tif as u8);
            w.u8(o.post_only as u8);
        }
        w.u32(self.slab.free.len() as u32);
        for &f in &self.slab.free {
            w.u32(f);
        }
        for s in 0..self.cap.symbols_max as usize {
            for ladder in [
                &self.books[s * 2],
                &self.books[s * 2 + 1],
                &self.stops[s * 2],
                &self.stops[s * 2 + 1],
            ] {
                let total: u32 = ladder.levels.iter().map(|l| l.list.count).sum();
                w.u32(total);
                let mut idx = ladder.bits.first();
                while let Some(i) = idx {
                    let mut h = ladder.levels[i as usize].list.head;
                    while h != NIL {
                        w.u32(h);
                        h = self.slab.orders[h as usize].next;
                    }
                    idx = ladder.bits.next_from(i + 1);
                }
            }
            let q = &self.symbols[s].queue;
            w.u32(q.count);
            let mut h = q.head;
            while h != NIL {
                w.u32(h);
                h = self.slab.orders[h as usize].next;
            }
        }
    }

    /// A hash of the full logical state: equal engines hash equal (FNV-1a over the snapshot encoding).
    pub fn state_hash(&self) -> u64 {
        let mut bytes = Vec::new();
        self.snapshot(&mut bytes);
        bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        })
    }

    /// Rebuilds an engine from [`Engine::snapshot`] output.
    pub fn restore(bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let mut r = R { b: bytes, at: 0 };
        if &r.take::<8>()? != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = r.u32()?;
        if !(2..=VERSION).contains(&version) {
            return Err(SnapshotError::BadVersion(version));
        }
        let cap = Capacity {
            orders_max: r.u32()?,
            symbols_max: r.u16()?,
            accounts_max: r.u32()?,
            sessions_max: r.u16()?,
            levels_per_symbol: r.u32()?,
            halt_queue_max: r.u32()?,
            matches_per_order_max: r.u32()?,
        };
        cap.check().map_err(|what| r.corrupt(what))?;
        // Allocate only what the remaining bytes could describe (ladders excepted: bounded by `check`).
        let need = cap.sessions_max as usize * SESSION_BYTES
            + cap.accounts_max as usize * ACCOUNT_BYTES
            + cap.accounts_max as usize * cap.symbols_max as usize * POSITION_BYTES
            + cap.symbols_max as usize * SYMBOL_BYTES_MIN
            + cap.orders_max as usize * SLOT_BYTES_MIN;
        if bytes.len().saturating_sub(r.at) < need {
            return Err(SnapshotError::Truncated {
                offset: bytes.len(),
            });
        }
        let mut e = Engine::new(cap);
        e.last_seq = r.u64()?;
        e.now = r.u64()?;
        e.match_number = r.u64()?;
        let has_cfg = r.bool("market breaker flag")?;
        let mut cfg = MarketBreaker {
            level_bps: [0; 3],
            halt_ns: [0; 3],
        };
        for i in 0..3 {
            cfg.level_bps[i] = r.u32()?;
            cfg.halt_ns[i] = r.u64()?;
            e.market.fired[i] = r.bool("market breaker fired flag")?;
        }
        e.market.config = has_cfg.then_some(cfg);
        let index_reference = r.u128()?;
        let index_now = r.u128()?;
        for s in e.sessions.iter_mut() {
            *s = Session {
                account: r.u32()?,
                last_user_ref: r.u32()?,
                entry_disabled: version >= 4 && r.bool("order entry disabled flag")?,
            };
            if s.account != NIL && s.account >= cap.accounts_max {
                return Err(r.corrupt("session bound to an account outside capacity"));
            }
        }
        for a in e.accounts.iter_mut() {
            *a = Account {
                exists: r.bool("account flag")?,
                firm: r.u16()?,
                self_trade: if version >= 3 {
                    let code = r.u8()?;
                    SelfTrade::from_code(code).ok_or(r.corrupt("unknown self-trade prevention code"))?
                } else {
                    SelfTrade::CancelNewest
                },
                short_limit: r.u32()?,
                max_order_qty: r.u32()?,
                max_order_notional: r.i64()?,
                cash_total: r.i64()?,
                cash_locked: r.i64()?,
            };
        }
        for p in e.positions.iter_mut() {
            *p = Position {
                total: r.i64()?,
                locked: r.i64()?,
            };
        }
        let (mut index_ref_sum, mut index_now_sum) = (0u128, 0u128);
        for (i, s) in e.symbols.iter_mut().enumerate() {
            if !r.bool("symbol flag")? {
                continue;
            }
            let config = AddSymbol {
                symbol: i as u16,
                reference_price: r.u32()?,
                ladder_min_price: r.u32()?,
                tick: r.u32()?,
                bands: Bands {
                    high_bps: r.u32()?,
                    mid_bps: r.u32()?,
                    low_bps: r.u32()?,
                    tier_high_price: r.u32()?,
                    tier_low_price: r.u32()?,
                    halt_ns: r.u64()?,
                },
                market_collar_bps: r.u32()?,
                index_weight: r.u32()?,
            };
            let span = (cap.levels_per_symbol as u64 - 1) * config.tick as u64;
            if config.tick == 0
                || config.reference_price == 0
                || config.ladder_min_price as u64 + span > u32::MAX as u64
            {
                return Err(r.corrupt("symbol ladder"));
            }
            let (band_low, band_high) = breaker::band(config.reference_price, &config.bands);
            *s = Symbol {
                exists: true,
                config,
                band_low,
                band_high,
                last_price: r.u32()?,
                halted: r.bool("halted flag")?,
                halt_until: r.u64()?,
                queue: List::EMPTY,
            };
            index_ref_sum += config.index_weight as u128 * config.reference_price as u128;
            index_now_sum += config.index_weight as u128 * s.last_price as u128;
        }
        if index_ref_sum != index_reference || index_now_sum != index_now {
            return Err(r.corrupt("market index disagrees with symbols"));
        }
        e.market.index_reference = index_reference;
        e.market.index_now = index_now;
        for s in &e.sessions {
            if s.account != NIL && !e.accounts[s.account as usize].exists {
                return Err(r.corrupt("session bound to an unknown account"));
            }
        }
        for h in 0..cap.orders_max as usize {
            let gen = r.u32()?;
            let loc = Loc::from_u8(r.u8()?).ok_or_else(|| r.corrupt("order location"))?;
            if loc == Loc::Transient {
                return Err(r.corrupt("transient order in snapshot"));
            }
            if loc == Loc::Free {
                e.slab.orders[h] = Order {
                    gen,
                    ..Order::EMPTY
                };
                continue;
            }
            let mut o = Order {
                gen,
                next: NIL,
                prev: NIL,
                account: r.u32()?,
                user_ref: r.u32()?,
                qty: r.u32()?,
                executed: r.u32()?,
                price: r.u32()?,
                stop_price: r.u32()?,
                lock_price: r.u32()?,
                slot: 0,
                session: r.u16()?,
                symbol: r.u16()?,
                side: Side::Buy,
                kind: OrderKind::Limit,
                tif: TimeInForce::Day,
                post_only: false,
                loc: Loc::Free,
                // Every order outliving an input is in the table; `rebuild_refs` below puts it there.
                indexed: true,
            };
            o.side = side_from(r.u8()?).ok_or_else(|| r.corrupt("order side"))?;
            o.kind = kind_from(r.u8()?).ok_or_else(|| r.corrupt("order kind"))?;
            o.tif = tif_from(r.u8()?).ok_or_else(|| r.corrupt("order time in force"))?;
            o.post_only = r.bool("post-only flag")?;
            let valid = o.account < cap.accounts_max
                && e.accounts[o.account as usize].exists
                && o.session < cap.sessions_max
                && e.symbols.get(o.symbol as usize).is_some_and(|s| s.exists)
                && match loc {
                    Loc::Book => o.kind == OrderKind::Limit && o.tif == TimeInForce::Day,
                    Loc::Stop => matches!(o.kind, OrderKind::Stop | OrderKind::StopLimit),
                    _ => true,
                };
            if !valid {
                return Err(r.corrupt("open order fields"));
            }
            o.loc = loc;
            e.slab.orders[h] = o;
        }
        let free_count = r.u32()?;
        if free_count > cap.orders_max {
            return Err(r.corrupt("free list longer than the slab"));
        }
        e.slab.free.clear();
        for _ in 0..free_count {
            let f = r.u32()?;
            if f >= cap.orders_max || e.slab.orders[f as usize].loc != Loc::Free {
                return Err(r.corrupt("free list names an open order"));
            }
            e.slab.free.push(f);
        }
        let mut placed = vec![false; cap.orders_max as usize];
        for s in 0..cap.symbols_max {
            for (stop, side) in [
                (false, Side::Buy),
                (false, Side::Sell),
                (true, Side::Buy),
                (true, Side::Sell),
            ] {
                let count = r.u32()?;
                if count > cap.orders_max {
                    return Err(r.corrupt("list longer than the slab"));
                }
                let mut last_idx = 0u32;
                for _ in 0..count {
                    let h = r.u32()?;
                    let o = *e
                        .slab
                        .orders
                        .get(h as usize)
                        .ok_or_else(|| r.corrupt("handle outside the slab"))?;
                    let want = if stop { Loc::Stop } else { Loc::Book };
                    if o.loc != want || o.symbol != s || o.side != side || placed[h as usize] {
                        return Err(r.corrupt("order listed in the wrong place"));
                    }
                    placed[h as usize] = true;
                    let price = if stop { o.stop_price } else { o.price };
                    let idx = e
                        .price_index(s, price)
                        .ok_or_else(|| r.corrupt("order price off the ladder"))?;
                    if idx < last_idx {
                        return Err(r.corrupt("levels out of order"));
                    }
                    last_idx = idx;
                    let ladder = if stop { &mut e.stops } else { &mut e.books };
                    ladder[s as usize * 2 + side_index(side)].push_back(&mut e.slab.orders, idx, h);
                }
            }
            let count = r.u32()?;
            if count > cap.orders_max {
                return Err(r.corrupt("queue longer than the slab"));
            }
            for _ in 0..count {
                let h = r.u32()?;
                let o = *e
                    .slab
                    .orders
                    .get(h as usize)
                    .ok_or_else(|| r.corrupt("handle outside the slab"))?;
                if o.loc != Loc::Queue || o.symbol != s || placed[h as usize] {
                    return Err(r.corrupt("order queued in the wrong place"));
                }
                placed[h as usize] = true;
                let orders = &mut e.slab.orders;
                e.symbols[s as usize].queue.push_back(orders, h);
            }
        }
        if r.at != bytes.len() {
            return Err(r.corrupt("trailing bytes"));
        }
        e.slab.high_water = e
            .slab
            .orders
            .iter()
            .rposition(|o| o.loc != Loc::Free)
            .map_or(0, |h| h as u32 + 1);
        if !e.rebuild_refs() {
            return Err(r.corrupt("duplicate order token"));
        }
        e.recompute_halt_expiry();
        e.check_invariants()
            .map_err(|_| r.corrupt("invariants do not hold"))?;
        Ok(e)
    }
}
