//! Arbitrary sequences of engine operations, replayed against the same reference model as the
//! proptest suite (`sessionward_tests::model`): any disagreement is a crash.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sessionward_tests::model::{Op, Replay, CIDRS, IDLE_CHOICES, IPS, PROFILES, USERS};

#[derive(Arbitrary, Debug)]
enum FuzzOp {
    Login {
        user: u8,
        ip: u8,
        mfa: bool,
    },
    Validate {
        session: u16,
        ip: u8,
        sensitive: bool,
    },
    StepUp {
        session: u16,
        ip: u8,
    },
    Advance {
        secs: u16,
    },
    AdvanceLong {
        minutes: u8,
    },
    UpdateSettings {
        idle: u8,
        lock: bool,
    },
    Logout {
        session: u16,
    },
    EndHandle {
        session: u16,
    },
    ResetPassword {
        user: u8,
    },
    EndProfile {
        profile: u8,
    },
    EndAll,
    EndFrom {
        cidr: u8,
    },
    Sweep,
    List,
}

fn pick(value: u8, len: usize) -> usize {
    usize::from(value) % len
}

impl FuzzOp {
    fn to_op(&self) -> Op {
        match *self {
            Self::Login { user, ip, mfa } => Op::Login {
                user: pick(user, USERS.len()),
                ip: pick(ip, IPS.len()),
                mfa,
            },
            Self::Validate {
                session,
                ip,
                sensitive,
            } => Op::Validate {
                session: usize::from(session),
                ip: pick(ip, IPS.len()),
                sensitive,
            },
            Self::StepUp { session, ip } => Op::StepUp {
                session: usize::from(session),
                ip: pick(ip, IPS.len()),
            },
            Self::Advance { secs } => Op::Advance {
                secs: u64::from(secs),
            },
            Self::AdvanceLong { minutes } => Op::Advance {
                secs: u64::from(minutes) * 60,
            },
            Self::UpdateSettings { idle, lock } => Op::UpdateSettings {
                idle: pick(idle, IDLE_CHOICES.len()),
                lock,
            },
            Self::Logout { session } => Op::Logout {
                session: usize::from(session),
            },
            Self::EndHandle { session } => Op::EndHandle {
                session: usize::from(session),
            },
            Self::ResetPassword { user } => Op::ResetPassword {
                user: pick(user, USERS.len()),
            },
            Self::EndProfile { profile } => Op::EndProfile {
                profile: pick(profile, PROFILES.len()),
            },
            Self::EndAll => Op::EndAll,
            Self::EndFrom { cidr } => Op::EndFrom {
                cidr: pick(cidr, CIDRS.len()),
            },
            Self::Sweep => Op::Sweep,
            Self::List => Op::List,
        }
    }
}

fuzz_target!(|ops: Vec<FuzzOp>| {
    let mut replay = Replay::new();
    for op in ops.iter().take(256) {
        if let Err(disagreement) = replay.apply(&op.to_op()) {
            panic!("engine and model disagree on {op:?}: {disagreement}");
        }
    }
});
