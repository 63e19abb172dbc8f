//! `GETRANGE key start end` (and its old name `SUBSTR`): a substring by inclusive byte
//! offsets, negative ones counting from the end, as Redis clamps them.

use bytes::Bytes;

use super::{parse_i64, CmdResult};
use crate::node::Node;
use crate::resp::Reply;

/// Redis's `getrangeCommand` arithmetic: the byte range of a string of `len` bytes.
fn range(len: i64, mut start: i64, mut end: i64) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if len == 0 || start >= len || start > end {
        return None;
    }
    let end = end.min(len - 1);
    Some((start as usize, end as usize + 1))
}

pub async fn run(node: &Node, args: &[Bytes]) -> CmdResult {
    let (start, end) = (parse_i64(&args[2])?, parse_i64(&args[3])?);
    let set = node.coordinator.get(&args[1], None).await?;
    let value = super::string_value(&set)?.unwrap_or_default();
    Ok(Reply::Bulk(match range(value.len() as i64, start, end) {
        Some((a, b)) => value.slice(a..b),
        None => Bytes::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn ranges_match_redis() {
        // "This is a string": 16 bytes.
        assert_eq!(range(16, 0, 3), Some((0, 4)));
        assert_eq!(range(16, -3, -1), Some((13, 16)));
        assert_eq!(range(16, 0, -1), Some((0, 16)));
        assert_eq!(range(16, 10, 100), Some((10, 16)));
        assert_eq!(range(16, 5, 3), None);
        assert_eq!(range(16, -1, -5), None);
        assert_eq!(range(0, 0, -1), None);
        assert_eq!(range(16, -100, 2), Some((0, 3)));
    }
}
