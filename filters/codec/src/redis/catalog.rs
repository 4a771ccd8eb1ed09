//! The command table as a closed label set, for metrics.

use super::commands::{Command, TABLE};

/// Number of known commands; [`Command::Unknown`] has index `COUNT`.
pub const COUNT: usize = TABLE.len();

/// The command with label index `i` (`i == COUNT` is [`Command::Unknown`]).
pub fn by_index(i: usize) -> Option<Command> {
    match TABLE.get(i) {
        Some(e) => Some(e.1),
        None if i == COUNT => Some(Command::Unknown),
        None => None,
    }
}

/// The label index of `c`: its position in the table, `COUNT` for unknown names.
#[inline]
pub fn index(c: Command) -> usize {
    c as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_by_index_agree() {
        for i in 0..=COUNT {
            let c = by_index(i).unwrap();
            assert_eq!(index(c), i, "{c:?}");
        }
        assert_eq!(by_index(COUNT + 1), None);
        assert_eq!(by_index(COUNT).unwrap().as_str(), "unknown");
    }
}
