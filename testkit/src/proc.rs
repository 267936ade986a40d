//! Processes as /proc shows them: who is whose parent, in which session, alive or a zombie.

/// A process, from /proc/PID/stat.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
}

impl Proc {
    /// `pid`'s entry, or None when it is gone.
    pub fn of(pid: i32) -> Option<Proc> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may contain anything, ')' included: the fields start after the last ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        let pgrp = fields.next()?.parse().ok()?;
        let session = fields.next()?.parse().ok()?;
        Some(Proc {
            pid,
            state,
            ppid,
            pgrp,
            session,
        })
    }

    /// Every process visible in /proc (processes that vanish while being read are skipped).
    pub fn all() -> Vec<Proc> {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .filter_map(Proc::of)
            .collect()
    }

    /// The processes whose parent is `ppid`.
    pub fn children_of(ppid: i32) -> Vec<Proc> {
        Proc::all().into_iter().filter(|p| p.ppid == ppid).collect()
    }

    /// Whether `pid` exists and is not a zombie.
    pub fn alive(pid: i32) -> bool {
        Proc::of(pid).is_some_and(|p| p.state != 'Z')
    }

    /// The command name of `pid` (empty when it is gone).
    pub fn comm(pid: i32) -> String {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end().to_owned())
            .unwrap_or_default()
    }

    /// Each thread of `pid` with its blocked signals (SigBlk), for diagnostics.
    pub fn thread_masks(pid: i32) -> Vec<(String, String)> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        tasks
            .filter_map(Result::ok)
            .map(|task| {
                let status =
                    std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
                let field = |name: &str| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                };
                (field("Name:"), field("SigBlk:"))
            })
            .collect()
    }
}
