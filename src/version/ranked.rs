//! A persistent ordered set that counts: a B+tree whose branches know how many elements each
//! child holds, so the rank of an element and the element at a rank cost O(log n), and whose
//! nodes are shared between versions (a clone is O(1); an update copies the O(log n) nodes on
//! its path). A sorted set's score order is one ([`super::zset::ZSet`]): ZRANK, ZCOUNT, rank
//! ranges and ZRANDMEMBER then cost what they cost in Redis's skiplist, which keeps spans for
//! the same reason.
//!
//! Leaves hold up to [`MAX`] elements and branches up to [`MAX`] children; a node that falls
//! below [`MIN`] after a removal is merged with a neighbour (and split again if that overfills
//! it), so every leaf is at the same depth and the depth stays O(log n).

use std::sync::Arc;

const MAX: usize = 16;
const MIN: usize = MAX / 4;

#[derive(Clone, Debug)]
enum Node<T> {
    Leaf(Vec<T>),
    Branch(Vec<Child<T>>),
}

/// A branch's entry: a subtree, its greatest element and how many elements it holds.
#[derive(Clone, Debug)]
struct Child<T> {
    last: T,
    len: usize,
    node: Arc<Node<T>>,
}

impl<T: Ord + Clone> Node<T> {
    fn entries(&self) -> usize {
        match self {
            Node::Leaf(items) => items.len(),
            Node::Branch(children) => children.len(),
        }
    }

    fn last(&self) -> Option<&T> {
        match self {
            Node::Leaf(items) => items.last(),
            Node::Branch(children) => children.last().map(|c| &c.last),
        }
    }

    /// How many elements the subtree holds.
    fn count(&self) -> usize {
        match self {
            Node::Leaf(items) => items.len(),
            Node::Branch(children) => children.iter().map(|c| c.len).sum(),
        }
    }

    /// A branch's entry for `node` (none for an empty one).
    fn child(node: Node<T>) -> Option<Child<T>> {
        Some(Child { last: node.last()?.clone(), len: node.count(), node: Arc::new(node) })
    }

    /// Splits an overfull node in two halves (the second returned).
    fn split(&mut self) -> Option<Node<T>> {
        if self.entries() <= MAX {
            return None;
        }
        Some(match self {
            Node::Leaf(items) => Node::Leaf(items.split_off(items.len() / 2)),
            Node::Branch(children) => Node::Branch(children.split_off(children.len() / 2)),
        })
    }

    /// The index of the child that holds `item`, or would: the first whose greatest element
    /// is not below it (the last child when `item` is above every element).
    fn slot(children: &[Child<T>], item: &T) -> usize {
        children.partition_point(|c| c.last < *item).min(children.len() - 1)
    }

    fn insert(&mut self, item: T) -> bool {
        match self {
            Node::Leaf(items) => match items.binary_search(&item) {
                Ok(_) => false,
                Err(i) => {
                    items.insert(i, item);
                    true
                }
            },
            Node::Branch(children) => {
                let i = Node::slot(children, &item);
                let child = &mut children[i];
                let node = Arc::make_mut(&mut child.node);
                if !node.insert(item) {
                    return false;
                }
                let second = node.split();
                child.len = child.len + 1 - second.as_ref().map_or(0, Node::count);
                if let Some(last) = node.last() {
                    child.last = last.clone();
                }
                if let Some(c) = second.and_then(Node::child) {
                    children.insert(i + 1, c);
                }
                true
            }
        }
    }

    fn remove(&mut self, item: &T) -> bool {
        match self {
            Node::Leaf(items) => match items.binary_search(item) {
                Ok(i) => {
                    items.remove(i);
                    true
                }
                Err(_) => false,
            },
            Node::Branch(children) => {
                let i = Node::slot(children, item);
                let child = &mut children[i];
                if !Arc::make_mut(&mut child.node).remove(item) {
                    return false;
                }
                child.len -= 1;
                match child.node.last() {
                    None => {
                        children.remove(i);
                    }
                    Some(last) => {
                        child.last = last.clone();
                        if child.node.entries() < MIN && children.len() > 1 {
                            Node::rebalance(children, i);
                        }
                    }
                }
                true
            }
        }
    }

    /// Merges the underfull child `i` with a neighbour, splitting the result again if it
    /// holds more than a node may.
    fn rebalance(children: &mut Vec<Child<T>>, i: usize) {
        let left = if i + 1 < children.len() { i } else { i - 1 };
        let b = children.remove(left + 1);
        let a = children.remove(left);
        // Every leaf is at the same depth, so neighbours are of one kind.
        let (merged, second) = match (Arc::unwrap_or_clone(a.node), Arc::unwrap_or_clone(b.node)) {
            (Node::Leaf(mut a), Node::Leaf(b)) => {
                a.extend(b);
                let mut merged = Node::Leaf(a);
                let second = merged.split();
                (merged, second)
            }
            (Node::Branch(mut a), Node::Branch(b)) => {
                a.extend(b);
                let mut merged = Node::Branch(a);
                let second = merged.split();
                (merged, second)
            }
            (a, b) => (a, Some(b)),
        };
        for (k, part) in [Some(merged), second].into_iter().flatten().filter_map(Node::child).enumerate() {
            children.insert(left + k, part);
        }
    }
}

/// The branches above a leaf, each with the index of the child taken.
type Path<'a, T> = Vec<(&'a [Child<T>], usize)>;

/// A persistent ordered set with ranks (see the module's text).
#[derive(Clone, Debug)]
pub struct Ranked<T> {
    root: Arc<Node<T>>,
    len: usize,
}

impl<T> Default for Ranked<T> {
    fn default() -> Self {
        Ranked { root: Arc::new(Node::Leaf(Vec::new())), len: 0 }
    }
}

impl<T: Ord + Clone> Ranked<T> {
    pub fn new() -> Self {
        Ranked::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Adds `item`; whether it was missing.
    pub fn insert(&mut self, item: T) -> bool {
        let root = Arc::make_mut(&mut self.root);
        if !root.insert(item) {
            return false;
        }
        self.len += 1;
        if let Some(second) = root.split() {
            let first = std::mem::replace(root, Node::Leaf(Vec::new()));
            *root = Node::Branch([Node::child(first), Node::child(second)].into_iter().flatten().collect());
        }
        true
    }

    /// Removes `item`; whether it was there.
    pub fn remove(&mut self, item: &T) -> bool {
        if self.len == 0 {
            return false;
        }
        let root = Arc::make_mut(&mut self.root);
        if !root.remove(item) {
            return false;
        }
        self.len -= 1;
        // A branch of one child gives way to the child.
        loop {
            let only = match &*self.root {
                Node::Branch(children) if children.len() == 1 => children[0].node.clone(),
                Node::Branch(children) if children.is_empty() => Arc::new(Node::Leaf(Vec::new())),
                _ => break,
            };
            self.root = only;
        }
        true
    }

    /// How many elements are below `item`: `Ok` if it is there, `Err` if not.
    pub fn rank(&self, item: &T) -> Result<usize, usize> {
        let mut node = &*self.root;
        let mut before = 0;
        loop {
            match node {
                Node::Leaf(items) => {
                    return items.binary_search(item).map(|i| before + i).map_err(|i| before + i);
                }
                Node::Branch(children) => {
                    let i = children.partition_point(|c| c.last < *item);
                    before += children[..i].iter().map(|c| c.len).sum::<usize>();
                    match children.get(i) {
                        Some(c) => node = &c.node,
                        None => return Err(before),
                    }
                }
            }
        }
    }

    /// The element at rank `index` (0: the least).
    pub fn get(&self, index: usize) -> Option<&T> {
        if index >= self.len {
            return None;
        }
        let (leaf, pos, _) = self.descend(index);
        leaf.get(pos)
    }

    /// The path to rank `index`: its leaf, its position there and the branches above
    /// (each with the index of the child taken). `index == len` ends past the last leaf's end.
    fn descend(&self, mut index: usize) -> (&[T], usize, Path<'_, T>) {
        let mut stack = Vec::new();
        let mut node = &*self.root;
        loop {
            match node {
                Node::Leaf(items) => return (items, index, stack),
                Node::Branch(children) => {
                    let mut i = 0;
                    while i + 1 < children.len() && index >= children[i].len {
                        index -= children[i].len;
                        i += 1;
                    }
                    stack.push((&children[..], i));
                    node = &children[i].node;
                }
            }
        }
    }

    /// The elements from rank `index` up, in order.
    pub fn iter_from(&self, index: usize) -> Iter<'_, T> {
        let index = index.min(self.len);
        let (leaf, pos, stack) = self.descend(index);
        Iter { stack, leaf, pos, rev: false, left: self.len - index }
    }

    /// The elements from rank `index` down, in reverse order (`index >= len`: from the last).
    pub fn iter_down_from(&self, index: usize) -> Iter<'_, T> {
        if self.len == 0 {
            return Iter { stack: Vec::new(), leaf: &[], pos: 0, rev: true, left: 0 };
        }
        let index = index.min(self.len - 1);
        let (leaf, pos, stack) = self.descend(index);
        Iter { stack, leaf, pos: pos + 1, rev: true, left: index + 1 }
    }

    pub fn iter(&self) -> Iter<'_, T> {
        self.iter_from(0)
    }
}

impl<T: Ord + Clone> FromIterator<T> for Ranked<T> {
    /// Builds the tree bottom up from the sorted, deduplicated items: O(n log n) for the sort,
    /// O(n) for the tree.
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut items: Vec<T> = iter.into_iter().collect();
        items.sort();
        items.dedup();
        let len = items.len();
        let fill = MAX * 3 / 4;
        let mut level: Vec<Child<T>> = Vec::new();
        let mut rest = items.into_iter().peekable();
        while rest.peek().is_some() {
            let leaf: Vec<T> = rest.by_ref().take(fill).collect();
            level.extend(Node::child(Node::Leaf(leaf)));
        }
        if level.is_empty() {
            return Ranked::default();
        }
        while level.len() > 1 {
            let mut up = Vec::with_capacity(level.len() / fill + 1);
            let mut rest = level.into_iter().peekable();
            while rest.peek().is_some() {
                let branch: Vec<Child<T>> = rest.by_ref().take(fill).collect();
                up.extend(Node::child(Node::Branch(branch)));
            }
            level = up;
        }
        let root = level.pop().map_or_else(|| Arc::new(Node::Leaf(Vec::new())), |c| c.node);
        Ranked { root, len }
    }
}

/// An iterator over a [`Ranked`], forward or in reverse, from a rank.
pub struct Iter<'a, T> {
    /// The branches above the current leaf, each with the index of the child being visited.
    stack: Vec<(&'a [Child<T>], usize)>,
    leaf: &'a [T],
    /// Forward: the position of the next element in `leaf`; reverse: one past it.
    pos: usize,
    rev: bool,
    left: usize,
}

impl<'a, T> Iter<'a, T> {
    /// Moves to the next leaf in the iterator's direction; false at the end.
    fn next_leaf(&mut self) -> bool {
        loop {
            let Some((children, i)) = self.stack.last_mut() else { return false };
            let next = if self.rev { i.checked_sub(1) } else { Some(*i + 1).filter(|j| *j < children.len()) };
            if let Some(j) = next {
                *i = j;
                let mut node: &'a Node<T> = &children[j].node;
                loop {
                    match node {
                        Node::Leaf(items) => {
                            self.leaf = items;
                            self.pos = if self.rev { items.len() } else { 0 };
                            return true;
                        }
                        Node::Branch(children) => {
                            let k = if self.rev { children.len() - 1 } else { 0 };
                            self.stack.push((children, k));
                            node = &children[k].node;
                        }
                    }
                }
            }
            self.stack.pop();
        }
    }
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        loop {
            if self.rev {
                if self.pos > 0 {
                    self.pos -= 1;
                    self.left = self.left.saturating_sub(1);
                    return self.leaf.get(self.pos);
                }
            } else if self.pos < self.leaf.len() {
                self.pos += 1;
                self.left = self.left.saturating_sub(1);
                return self.leaf.get(self.pos - 1);
            }
            if !self.next_leaf() {
                return None;
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

impl<T: Ord + Clone> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Every invariant of the tree: leaves at one depth, counts and greatest elements right,
    /// nodes within their bounds (the root excepted), elements in order.
    fn check<T: Ord + Clone + std::fmt::Debug>(t: &Ranked<T>) {
        fn walk<T: Ord + Clone + std::fmt::Debug>(
            node: &Node<T>,
            root: bool,
            depth: usize,
            leaves: &mut Vec<usize>,
        ) -> usize {
            assert!(node.entries() <= MAX);
            assert!(root || node.entries() >= 1);
            match node {
                Node::Leaf(items) => {
                    assert!(items.windows(2).all(|w| w[0] < w[1]));
                    leaves.push(depth);
                    items.len()
                }
                Node::Branch(children) => {
                    assert!(!children.is_empty());
                    assert!(children.windows(2).all(|w| w[0].last < w[1].last));
                    children
                        .iter()
                        .map(|c| {
                            assert_eq!(Some(&c.last), c.node.last());
                            let n = walk(&c.node, false, depth + 1, leaves);
                            assert_eq!(n, c.len);
                            n
                        })
                        .sum()
                }
            }
        }
        let mut leaves = Vec::new();
        assert_eq!(walk(&t.root, true, 0, &mut leaves), t.len);
        assert!(leaves.windows(2).all(|w| w[0] == w[1]), "leaves at depths {leaves:?}");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16),
        Remove(u16),
        Snapshot,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => any::<u16>().prop_map(|v| Op::Insert(v % 3000)),
            3 => any::<u16>().prop_map(|v| Op::Remove(v % 3000)),
            1 => Just(Op::Snapshot),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The tree answers as a `BTreeSet` does, and a clone taken before updates is untouched
        /// by them (the nodes are shared, not changed in place).
        #[test]
        fn answers_as_a_btreeset(start in proptest::collection::vec(0u16..3000, 0..400),
                                 ops in proptest::collection::vec(op(), 0..1500),
                                 probes in proptest::collection::vec(0u16..3001, 1..20)) {
            let mut t: Ranked<u16> = start.iter().copied().collect();
            let mut model: BTreeSet<u16> = start.iter().copied().collect();
            let mut snapshots: Vec<(Ranked<u16>, Vec<u16>)> = Vec::new();
            check(&t);
            for op in ops {
                match op {
                    Op::Insert(v) => prop_assert_eq!(t.insert(v), model.insert(v)),
                    Op::Remove(v) => prop_assert_eq!(t.remove(&v), model.remove(&v)),
                    Op::Snapshot => snapshots.push((t.clone(), model.iter().copied().collect())),
                }
            }
            check(&t);
            let all: Vec<u16> = model.iter().copied().collect();
            prop_assert_eq!(t.len(), all.len());
            prop_assert_eq!(t.iter().copied().collect::<Vec<_>>(), all.clone());
            for p in probes {
                let i = all.partition_point(|x| *x < p);
                let rank = if all.get(i) == Some(&p) { Ok(i) } else { Err(i) };
                prop_assert_eq!(t.rank(&p), rank);
                prop_assert_eq!(t.get(p as usize).copied(), all.get(p as usize).copied());
                let from = p as usize % (all.len() + 2);
                prop_assert_eq!(t.iter_from(from).copied().collect::<Vec<_>>(), all.iter().skip(from).copied().collect::<Vec<_>>());
                prop_assert_eq!(t.iter_from(from).len(), all.len().saturating_sub(from));
                prop_assert_eq!(
                    t.iter_down_from(from).copied().collect::<Vec<_>>(),
                    all.iter().take(from.saturating_add(1)).rev().copied().collect::<Vec<_>>()
                );
            }
            for (snap, items) in snapshots {
                check(&snap);
                prop_assert_eq!(snap.iter().copied().collect::<Vec<_>>(), items);
            }
        }
    }

    /// Three levels and more: a long seeded run of inserts and removals, checked against a
    /// `BTreeSet` (the property test's sets stay within two levels).
    #[test]
    fn a_deep_tree_answers_as_a_btreeset() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let mut t = Ranked::new();
        let mut model = BTreeSet::new();
        for round in 0..400_000u32 {
            let v: u32 = rng.gen_range(0..60_000);
            if rng.gen_bool(if round < 200_000 { 0.7 } else { 0.3 }) {
                assert_eq!(t.insert(v), model.insert(v));
            } else {
                assert_eq!(t.remove(&v), model.remove(&v));
            }
            if round % 50_000 == 0 {
                check(&t);
            }
        }
        check(&t);
        let all: Vec<u32> = model.iter().copied().collect();
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), all);
        for _ in 0..2_000 {
            let p: u32 = rng.gen_range(0..60_001);
            let i = all.partition_point(|x| *x < p);
            assert_eq!(t.rank(&p), if all.get(i) == Some(&p) { Ok(i) } else { Err(i) });
            assert_eq!(t.get(i), all.get(i));
        }
    }

    #[test]
    fn draining_from_the_front_keeps_the_tree_shallow() {
        let mut t: Ranked<u32> = (0..100_000).collect();
        let keep = (MIN - 1) as u32;
        for v in 0..100_000 - keep {
            assert!(t.remove(&v));
        }
        check(&t);
        assert_eq!(t.iter().copied().collect::<Vec<_>>(), (100_000 - keep..100_000).collect::<Vec<_>>());
        assert!(matches!(&*t.root, Node::Leaf(_)), "fewer than MIN elements are one leaf");
    }
}
