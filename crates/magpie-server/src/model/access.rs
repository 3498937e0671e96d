//! ACL permissions of one call: whether a user's selectors allow a command with these
//! arguments, reading the keys from the command's key specs and the channels from its entry
//! (Redis's `ACLCheckAllUserCommandPerm`). Dispatch asks it before running every command (and
//! EXEC before each queued one); ACL DRYRUN asks it for another user.

use magpie_protocol::Args;

use super::command::{Channels, Command};
use super::flags::{Flags, KeyFlags};
use super::keyspec::{Begin, Find, KeySpec, key_positions};
use crate::services::acl::{Reason, Selector, User};

/// Why a call is refused, and the argument (key or channel) that was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Denied {
    pub reason: Reason,
    pub arg: usize,
}

/// A call's keys with their spec's flags, found once for all the selectors: a single-key
/// command's key directly from its spec (this runs for every command of a user with key
/// patterns), the others' by walking the specs, on first need.
enum Keys {
    One(Option<(usize, KeyFlags)>),
    Many(Option<Vec<(usize, KeyFlags)>>),
}

impl Keys {
    fn of(cmd: &Command, args: Args<'_>) -> Keys {
        if let [spec @ KeySpec { begin: Begin::Index(pos), find: Find::Range { last: 0, .. }, .. }] = cmd.key_specs
            && !spec.flags.contains(KeyFlags::NOT_KEY)
            && let Ok(pos) = usize::try_from(*pos)
        {
            return Keys::One((pos < args.len()).then_some((pos, spec.flags)));
        }
        Keys::Many(None)
    }

    fn get(&mut self, cmd: &Command, args: Args<'_>) -> &[(usize, KeyFlags)] {
        match self {
            Keys::One(key) => key.as_slice(),
            Keys::Many(found) => found.get_or_insert_with(|| {
                let mut keys = Vec::new();
                // Arguments that contradict the key specs name no keys, as in Redis (the
                // command then fails on its own).
                if key_positions(cmd.key_specs, args, |i, flags| keys.push((i, flags))).is_err() {
                    keys.clear();
                }
                keys
            }),
        }
    }
}

/// Whether `user` may run `cmd` (id `id`) with `args`. When no selector allows it, the refusal
/// reported is Redis's choice: the greatest reason, and for equal reasons the last argument.
pub(crate) fn check(user: &User, id: usize, cmd: &Command, args: Args<'_>) -> Result<(), Denied> {
    if user.unrestricted() {
        return Ok(());
    }
    let mut keys = Keys::of(cmd, args);
    let mut worst = Denied { reason: Reason::Command, arg: 0 };
    for selector in user.selectors() {
        match check_selector(selector, id, cmd, args, &mut keys) {
            Ok(()) => return Ok(()),
            Err(d) => {
                if d.reason > worst.reason || (d.reason == worst.reason && d.arg > worst.arg) {
                    worst = d;
                }
            }
        }
    }
    Err(worst)
}

fn check_selector(
    selector: &Selector,
    id: usize,
    cmd: &Command,
    args: Args<'_>,
    keys: &mut Keys,
) -> Result<(), Denied> {
    if !selector.allows_command(id, cmd.has(Flags::NO_AUTH)) {
        // A first argument allowed on its own (`+select|0`): after the subcommand, for a
        // subcommand.
        let first_at = if cmd.name.contains('|') { 2 } else { 1 };
        if args.len() <= first_at || !selector.allows_first_arg(id, args.get(first_at)) {
            return Err(Denied { reason: Reason::Command, arg: 0 });
        }
    }
    if !selector.all_keys() && cmd.has_keys() {
        for &(pos, flags) in keys.get(cmd, args) {
            let read = flags.contains(KeyFlags::ACCESS);
            let write = flags.intersects(KeyFlags::INSERT | KeyFlags::DELETE | KeyFlags::UPDATE);
            if !selector.allows_key(args.get(pos), read, write) {
                return Err(Denied { reason: Reason::Key, arg: pos });
            }
        }
    }
    if !selector.all_channels() && cmd.channels != Channels::None {
        let (positions, pattern) = match cmd.channels {
            Channels::First => (1..2.min(args.len()), false),
            Channels::All => (1..args.len(), false),
            Channels::AllPatterns => (1..args.len(), true),
            Channels::None => (0..0, false),
        };
        for pos in positions {
            if !selector.allows_channel(args.get(pos), pattern) {
                return Err(Denied { reason: Reason::Channel, arg: pos });
            }
        }
    }
    Ok(())
}
