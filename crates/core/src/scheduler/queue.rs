//! Objects ready to dispatch in one zone, highest priority first: buckets by (rank, criticality)
//! with first-in first-out inside a bucket. Pushing and popping cost O(log buckets), and there are
//! few buckets (distinct ranks times four), so a queue of a million roots pops at O(1).

use std::collections::{BTreeMap, VecDeque};

#[derive(Debug, Default)]
pub(crate) struct ReadyQueue {
    buckets: BTreeMap<(u32, u8), VecDeque<u32>>,
    len: usize,
}

impl ReadyQueue {
    pub(crate) fn push(&mut self, rank: u32, criticality: u8, index: u32) {
        self.buckets
            .entry((rank, criticality))
            .or_default()
            .push_back(index);
        self.len += 1;
    }

    pub(crate) fn pop(&mut self) -> Option<u32> {
        let mut bucket = self.buckets.last_entry()?;
        let index = bucket.get_mut().pop_front();
        if bucket.get().is_empty() {
            bucket.remove();
        }
        self.len -= 1;
        index
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        self.buckets.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_rank_then_criticality_then_first_in() {
        let mut q = ReadyQueue::default();
        q.push(1, 3, 10);
        q.push(2, 0, 11);
        q.push(2, 1, 12);
        q.push(2, 1, 13);
        q.push(1, 3, 14);
        let order: Vec<u32> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![12, 13, 11, 10, 14]);
        assert_eq!(q.len(), 0);
    }
}
