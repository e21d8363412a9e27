//! The queue of tasks that have not started: priority lanes, promotion
//! tiers and per-tag lists, threaded through two slabs.
//!
//! Every queued task is one 24-byte node: the task and the links of its
//! *place*, either the lane of its priority or a promotion tier. A task
//! that has a tag or a priority other than 0 also has an *extra* entry in a
//! second slab, with what only such tasks need: its priority, its tag and
//! the links of that tag's list of queued tasks (in submission order), and
//! its tier and order there once promoted. A plain task, the common case,
//! pays for the node alone; the header of its cell records both keys.
//!
//! Tasks start in this order: promotion tiers, newest first, each in its own
//! order; then lanes, highest priority first, each first in, first out.
//! Keys, lanes and tags are indices, never pointers: the structure has no
//! `unsafe` and no reference cycles. Keys are 32 bits, which is what keeps
//! a node at 24 bytes and the cell's header at 16, so a queue holds at most
//! [`MAX_QUEUED`] tasks (the plan clamps its capacity to it).
//!
//! That layout is what makes the operations a channel cannot offer cheap:
//! cancelling a queued task unlinks it in O(1), so its future is dropped and
//! its room freed at once; promoting a tag walks only that tag's list; and
//! cancelling a tag drops only that tag's tasks. There is no separate ingress
//! channel: a submitted task goes straight into this structure, so promotion
//! and cancellation see every queued task. The queue is not synchronized
//! itself: it lives inside the plan's mutex.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use slab::Slab;

use crate::engine::cell::{Header, Task, TaskId};

/// A key in one of the queue's slabs.
type Key = u32;

/// Marks the end of a list, and a task without an extra entry; keys never
/// reach it.
const NIL: Key = Key::MAX;

/// The most tasks a queue holds at once: every key stays below [`NIL`].
pub(crate) const MAX_QUEUED: usize = NIL as usize - 1;

/// Where a queued task waits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    /// The lane of this priority.
    Lane(i32),
    /// The promotion tier of this number in `Queue::tiers`.
    Tier(u64),
}

/// Ends and length of one list.
#[derive(Clone, Copy, Debug)]
struct List {
    head: Key,
    tail: Key,
    len: usize,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

/// Links of one list through an entry.
#[derive(Clone, Copy)]
struct Links {
    previous: Key,
    next: Key,
}

impl Links {
    const UNLINKED: Links = Links {
        previous: NIL,
        next: NIL,
    };
}

/// A queued task and the links of its place.
struct Node {
    task: Task,
    links: Links,
}

/// What a queued task with a tag or a priority has beyond its node.
struct Extra {
    /// The task's node.
    node: Key,
    priority: i32,
    /// The tag's index, or `NIL`.
    tag: Key,
    /// The links of the tag's list.
    tag_links: Links,
    /// The promotion tier the task waits in; 0 while in its lane.
    tier: u64,
    /// Order within the task's place: submission order in a lane, the
    /// order of promotion in a tier.
    sequence: u64,
}

/// An entry of a slab that threads one list.
trait Linked {
    fn links(&mut self) -> &mut Links;
}

impl Linked for Node {
    fn links(&mut self) -> &mut Links {
        &mut self.links
    }
}

impl Linked for Extra {
    fn links(&mut self) -> &mut Links {
        &mut self.tag_links
    }
}

/// Every task a [`Queue::drain`] took, in no particular order.
pub(crate) struct Drained(Slab<Node>);

impl Drained {
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn into_tasks(self) -> impl Iterator<Item = Task> {
        self.0.into_iter().map(|(_, node)| node.task)
    }
}

/// The queued tasks of a plan.
pub(crate) struct Queue {
    nodes: Slab<Node>,
    extras: Slab<Extra>,
    /// The lane of the default priority, 0, where most tasks go. It lives
    /// outside `lanes` so that a queue emptying and refilling, the common
    /// case, never allocates or frees a map node.
    default_lane: List,
    /// Lanes of other priorities, highest first. Empty lanes are removed, so
    /// the map holds only priorities in use.
    lanes: BTreeMap<Reverse<i32>, List>,
    /// Non-empty promotion tiers by promotion number: the last runs first.
    /// Empty tiers are removed, so the map holds only pending promotions.
    tiers: BTreeMap<u64, List>,
    /// The number of the next promotion; numbers only grow, from 1.
    next_promotion: u64,
    /// Queued tasks of each tag, by tag index: lists of extra entries.
    tags: Vec<List>,
    next_sequence: u64,
    /// The storage a queue keeps when it empties: what it was made with.
    /// Storage grown past it for a burst is freed once the burst has
    /// drained, so a plan's memory returns to its baseline.
    retained_capacity: usize,
}

/// A slab key as a list key. Cannot fail for a queue of at most
/// [`MAX_QUEUED`] tasks, whose keys all stay below that bound.
fn key(key: usize) -> Key {
    debug_assert!(key <= MAX_QUEUED, "a queue holds at most MAX_QUEUED tasks");
    key as Key
}

impl Queue {
    pub(crate) fn with_capacity(capacity: usize) -> Queue {
        Queue {
            nodes: Slab::with_capacity(capacity),
            extras: Slab::new(),
            default_lane: List::EMPTY,
            lanes: BTreeMap::new(),
            tiers: BTreeMap::new(),
            next_promotion: 1,
            tags: Vec::new(),
            next_sequence: 0,
            retained_capacity: capacity,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Number of queued tasks with the tag of this index.
    pub(crate) fn tag_len(&self, tag: usize) -> usize {
        self.tags.get(tag).map_or(0, |list| list.len)
    }

    /// Queues a task behind every task of its priority, and records in its
    /// header its keys and its sequence number, which becomes its id: ids
    /// follow the order in which tasks were queued.
    ///
    /// The caller keeps the queue at most [`MAX_QUEUED`] long.
    pub(crate) fn push(&mut self, mut task: Task, priority: i32, tag: Option<usize>) -> TaskId {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let id = TaskId::from_sequence(sequence);
        let node = key(self.nodes.vacant_key());
        task.header().set_queue_key(node);
        task.set_id(id);
        let extra = if priority != 0 || tag.is_some() {
            key(self.extras.insert(Extra {
                node,
                priority,
                tag: tag.map_or(NIL, key),
                tag_links: Links::UNLINKED,
                tier: 0,
                sequence,
            }))
        } else {
            NIL
        };
        if extra != NIL {
            task.set_extra_key(extra);
        }
        self.nodes.insert(Node {
            task,
            links: Links::UNLINKED,
        });
        let lane = match priority {
            0 => &mut self.default_lane,
            _ => self.lanes.entry(Reverse(priority)).or_insert(List::EMPTY),
        };
        append(&mut self.nodes, lane, node);
        if let Some(tag) = tag {
            if self.tags.len() <= tag {
                self.tags.resize(tag + 1, List::EMPTY);
            }
            append(&mut self.extras, &mut self.tags[tag], extra);
        }
        id
    }

    /// Takes the task that starts next. The caller marks it started.
    pub(crate) fn pop(&mut self) -> Option<(Task, Option<usize>)> {
        let key = match self.tiers.last_key_value() {
            Some((_, tier)) => tier.head,
            None => match self.lanes.first_key_value() {
                Some((&Reverse(priority), lane)) if priority > 0 => lane.head,
                _ if self.default_lane.len > 0 => self.default_lane.head,
                Some((_, lane)) => lane.head,
                None => return None,
            },
        };
        Some(self.remove_node(key))
    }

    /// Unlinks the task at `key` so it can be dropped instead of run.
    ///
    /// The caller must have seen the task as queued with the lock held, which
    /// guarantees `key` still belongs to it.
    pub(crate) fn remove(&mut self, key: usize) -> (Task, Option<usize>) {
        let (task, tag) = self.remove_node(self::key(key));
        task.header().mark_unqueued_for_cancel();
        (task, tag)
    }

    /// Takes every queued task at once, to be dropped instead of run, and
    /// leaves the queue empty, with fresh storage of its initial capacity:
    /// the old storage goes with the tasks. An abort drains the queue of a
    /// plan that has closed for good; `cancel_all` one that stays open.
    ///
    /// O(1) under the caller's lock: nothing is unlinked, and the tasks keep
    /// their QUEUED state until they are dropped, so an abort of a long
    /// queue holds the lock for no longer than a short one. A cancel that
    /// meanwhile sees one of them as QUEUED finds, through
    /// [`holds`](Queue::holds), that the queue no longer has it (its key may
    /// already hold a newer task: `holds` compares the task, not the key),
    /// and leaves it to the drain, which resolves it.
    pub(crate) fn drain(&mut self) -> Drained {
        self.default_lane = List::EMPTY;
        self.lanes.clear();
        self.tiers.clear();
        self.tags.iter_mut().for_each(|list| *list = List::EMPTY);
        self.extras = Slab::new();
        let fresh = Slab::with_capacity(self.retained_capacity);
        Drained(std::mem::replace(&mut self.nodes, fresh))
    }

    /// The key of the queued task numbered `id`.
    ///
    /// O(queued tasks): the queue keeps no index by id, since that would be
    /// written for every task and only this lookup reads it.
    pub(crate) fn find(&self, id: TaskId) -> Option<usize> {
        self.nodes
            .iter()
            .find(|(_, node)| node.task.id() == id)
            .map(|(key, _)| key)
    }

    /// Whether the task whose header this is still sits in the queue at
    /// `key`: a task seen as QUEUED under the lock either does, or was taken
    /// by a [`drain`](Queue::drain).
    pub(crate) fn holds(&self, key: usize, header: &Header) -> bool {
        self.nodes
            .get(key)
            .is_some_and(|node| std::ptr::eq(node.task.header(), header))
    }

    /// Takes every queued task of one tag, to be dropped instead of run.
    pub(crate) fn drain_tag(&mut self, tag: usize) -> Vec<Task> {
        let mut tasks = Vec::with_capacity(self.tag_len(tag));
        while let Some(extra) = self
            .tags
            .get(tag)
            .map(|list| list.head)
            .filter(|&extra| extra != NIL)
        {
            let node = self.extras[extra as usize].node;
            tasks.push(self.remove(node as usize).0);
        }
        tasks
    }

    /// Moves every queued task of one tag in front of every other queued
    /// task, keeping the order in which they would have started, and returns
    /// how many moved.
    ///
    /// Costs O(m log m) for the m tasks moved (plus O(log k) per move for k
    /// pending promotions), whatever the queue's length: it walks the tag's
    /// own list, never the queue.
    pub(crate) fn promote(&mut self, tag: usize) -> usize {
        let Some(list) = self.tags.get(tag).copied() else {
            return 0;
        };
        if list.len == 0 {
            return 0;
        }
        let mut moving = Vec::with_capacity(list.len);
        let mut extra = list.head;
        while extra != NIL {
            let entry = &self.extras[extra as usize];
            // The order the task would start in: tiers before lanes (rank 0),
            // newer tiers first, then higher priorities, then sequence.
            let (rank, priority) = match entry.tier {
                0 => (0, entry.priority),
                promotion => (promotion, 0),
            };
            moving.push((Reverse(rank), Reverse(priority), entry.sequence, extra));
            extra = entry.tag_links.next;
        }
        moving.sort_unstable();

        let promotion = self.next_promotion;
        self.next_promotion += 1;
        let mut tier = List::EMPTY;
        for &(_, _, _, extra) in &moving {
            let node = self.extras[extra as usize].node;
            self.unlink_place(node, extra);
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            let entry = &mut self.extras[extra as usize];
            entry.tier = promotion;
            entry.sequence = sequence;
            append(&mut self.nodes, &mut tier, node);
        }
        self.tiers.insert(promotion, tier);
        moving.len()
    }

    fn remove_node(&mut self, node: Key) -> (Task, Option<usize>) {
        let extra = self.nodes[node as usize].task.extra_key();
        self.unlink_place(node, extra);
        let mut tag = None;
        if extra != NIL {
            let index = self.extras[extra as usize].tag;
            if index != NIL {
                unlink(&mut self.extras, &mut self.tags[index as usize], extra);
                tag = Some(index as usize);
            }
            self.extras.remove(extra as usize);
        }
        let task = self.nodes.remove(node as usize).task;
        // Only on emptying: shrinking a queue that still holds tasks would
        // move them all, and a burst regrows its storage in amortized O(1)
        // per task anyway.
        if self.nodes.is_empty() {
            if self.nodes.capacity() > self.retained_capacity {
                self.nodes = Slab::with_capacity(self.retained_capacity);
            }
            if self.extras.capacity() > self.retained_capacity {
                self.extras = Slab::new();
            }
        }
        (task, tag)
    }

    /// Where the task of this node waits, given its extra entry.
    fn place(&self, extra: Key) -> Place {
        match self.extras.get(extra as usize) {
            None => Place::Lane(0),
            Some(entry) if entry.tier != 0 => Place::Tier(entry.tier),
            Some(entry) => Place::Lane(entry.priority),
        }
    }

    /// Unlinks a node from its lane or tier, dropping the lane or tier if it
    /// empties.
    fn unlink_place(&mut self, node: Key, extra: Key) {
        match self.place(extra) {
            Place::Lane(0) => unlink(&mut self.nodes, &mut self.default_lane, node),
            Place::Lane(priority) => {
                let lane = self
                    .lanes
                    .get_mut(&Reverse(priority))
                    .expect("a queued task's lane exists");
                unlink(&mut self.nodes, lane, node);
                if lane.len == 0 {
                    self.lanes.remove(&Reverse(priority));
                }
            }
            Place::Tier(promotion) => {
                let tier = self
                    .tiers
                    .get_mut(&promotion)
                    .expect("a queued task's tier exists");
                unlink(&mut self.nodes, tier, node);
                if tier.len == 0 {
                    self.tiers.remove(&promotion);
                }
            }
        }
    }
}

fn append<E: Linked>(entries: &mut Slab<E>, list: &mut List, key: Key) {
    let previous = list.tail;
    *entries[key as usize].links() = Links {
        previous,
        next: NIL,
    };
    match previous {
        NIL => list.head = key,
        previous => entries[previous as usize].links().next = key,
    }
    list.tail = key;
    list.len += 1;
}

fn unlink<E: Linked>(entries: &mut Slab<E>, list: &mut List, key: Key) {
    let Links { previous, next } = *entries[key as usize].links();
    match previous {
        NIL => list.head = next,
        previous => entries[previous as usize].links().next = next,
    }
    match next {
        NIL => list.tail = previous,
        next => entries[next as usize].links().previous = previous,
    }
    *entries[key as usize].links() = Links::UNLINKED;
    list.len -= 1;
}

#[cfg(test)]
mod tests {
    //! The queue against a model that sorts a plain vector: random pushes,
    //! pops, removals, promotions and tag drains must agree on every start.
    //!
    //! Mutation testing: `replace > with >= in Queue::pop` (the `priority >
    //! 0` guard) survives because it changes nothing: priority 0 lives in
    //! `default_lane`, never in `lanes`, so no lane has priority 0.

    use super::*;
    use crate::engine::cell::{NewTask, Setup};

    /// A queued task as the model sees it.
    #[derive(Clone, Debug)]
    struct Entry {
        id: u64,
        key: usize,
        priority: i32,
        tag: Option<usize>,
        /// `Some((promotion, position))` once promoted.
        promoted: Option<(u64, usize)>,
    }

    impl Entry {
        /// Smaller starts first.
        fn order(&self) -> (u8, Reverse<u64>, usize, Reverse<i32>, u64) {
            match self.promoted {
                Some((promotion, position)) => (0, Reverse(promotion), position, Reverse(0), 0),
                None => (1, Reverse(0), 0, Reverse(self.priority), self.id),
            }
        }
    }

    /// A task with a side part, as every task the plan queues with a
    /// priority or a tag has (these tests choose both at the push).
    fn task() -> Task {
        let setup = Setup {
            priority: 1,
            ..Setup::default()
        };
        NewTask::new(async {}, setup).into_task()
    }

    /// xorshift64: deterministic, no dependency.
    struct Random(u64);

    impl Random {
        fn below(&mut self, bound: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % bound
        }
    }

    fn sorted(model: &[Entry]) -> Vec<Entry> {
        let mut sorted = model.to_vec();
        sorted.sort_by_key(Entry::order);
        sorted
    }

    /// A burst grows the queue's storage; once it has drained, the queue
    /// is back to what it was made with, whichever way it emptied.
    #[test]
    fn storage_grown_for_a_burst_is_freed_when_the_queue_empties() {
        let mut queue = Queue::with_capacity(4);
        for _ in 0..1000 {
            queue.push(task(), 0, Some(0));
        }
        assert!(queue.nodes.capacity() >= 1000);
        while queue.len() > 1 {
            queue.pop();
        }
        assert!(queue.nodes.capacity() >= 1000, "kept while tasks remain");
        let last = queue.nodes.iter().next().map(|(key, _)| key).unwrap();
        queue.remove(last);
        assert_eq!(queue.nodes.capacity(), 4);
        for _ in 0..1000 {
            queue.push(task(), 1, None);
        }
        drop(queue.drain_tag(0));
        while queue.pop().is_some() {}
        assert_eq!(queue.nodes.capacity(), 4);
    }

    /// A queue that empties without having grown past the storage it was
    /// made with keeps that storage: emptying and refilling, the common
    /// case, frees and allocates nothing. Seen through the slab's keys: the
    /// kept storage hands out the key freed last (3), a new one its first
    /// (0). Kills `replace > with >= in Queue::remove_node`, which swaps
    /// the storage for a new one of the same size.
    #[test]
    fn a_queue_that_did_not_grow_keeps_its_storage_when_it_empties() {
        let mut queue = Queue::with_capacity(4);
        for _ in 0..4 {
            queue.push(task(), 0, None);
        }
        assert_eq!(queue.nodes.capacity(), 4);
        while queue.pop().is_some() {}
        queue.push(task(), 0, None);
        assert_eq!(queue.nodes.iter().next().map(|(key, _)| key), Some(3));
        assert_eq!(queue.nodes.capacity(), 4);
    }

    /// A cancel trusts `holds` to tell a task still at its key from one a
    /// drain took or whose key went to another task. Kills `replace
    /// Queue::holds -> bool with true`, which the plan-level suites only
    /// reach through a cancel racing an abort.
    #[test]
    fn holds_only_the_task_still_at_its_key() {
        let mut queue = Queue::with_capacity(4);
        queue.push(task(), 0, None);
        let (left, _) = queue.pop().unwrap();
        queue.push(task(), 0, None);
        let key = left.header().queue_key();
        assert_eq!(queue.nodes.iter().next().map(|(key, _)| key), Some(key));
        assert!(queue.holds(key, queue.nodes[key].task.header()));
        assert!(!queue.holds(key, left.header()), "its key went to another");
        let drained: Vec<Task> = queue.drain().into_tasks().collect();
        assert!(!queue.holds(key, drained[0].header()), "a drain took it");
    }

    /// A plain task costs the queue one 24-byte node and nothing else; a
    /// task with a tag or a priority also has an extra entry, given back
    /// however it leaves. Kills `replace || with && in Queue::push` and a
    /// `remove_node` that forgets the entry.
    #[test]
    fn only_a_task_with_a_tag_or_priority_has_an_extra_entry() {
        assert_eq!(std::mem::size_of::<Node>(), 24);
        let mut queue = Queue::with_capacity(4);
        queue.push(task(), 0, None);
        assert_eq!(queue.extras.len(), 0, "a plain task");
        queue.push(task(), 3, None);
        queue.push(task(), 0, Some(0));
        assert_eq!(queue.extras.len(), 2, "a priority and a tag");
        let extra_of = |queue: &Queue, key: usize| queue.nodes[key].task.extra_key();
        let plain = queue.nodes.iter().map(|(key, _)| key).min().unwrap();
        assert_eq!(extra_of(&queue, plain), NIL);
        let (first, tag) = queue.pop().unwrap();
        assert_eq!(
            (first.id(), tag),
            (TaskId::from_sequence(1), None),
            "priority 3 first"
        );
        assert_eq!(queue.extras.len(), 1);
        let tagged = queue.find(TaskId::from_sequence(2)).unwrap();
        assert_eq!(queue.remove(tagged).1, Some(0));
        assert_eq!(queue.extras.len(), 0);
        queue.push(task(), 1, Some(1));
        drop(queue.drain());
        assert_eq!(queue.extras.len(), 0, "a drain takes the entries too");
        assert_eq!(queue.tag_len(1), 0);
    }

    /// Entries grown for a burst of tagged tasks are freed with the nodes
    /// once the queue empties.
    #[test]
    fn extra_storage_grown_for_a_burst_is_freed_when_the_queue_empties() {
        let mut queue = Queue::with_capacity(4);
        for _ in 0..1000 {
            queue.push(task(), 2, None);
        }
        assert!(queue.extras.capacity() >= 1000);
        while queue.pop().is_some() {}
        assert_eq!(queue.extras.capacity(), 0);
    }

    /// Entries that grew only up to the queue's initial capacity are kept
    /// when it empties, as its nodes are: refilling it with tagged tasks
    /// allocates nothing. Kills `replace > with >= in Queue::remove_node`
    /// (the entries' bound), which frees them at exactly that capacity.
    #[test]
    fn extra_storage_within_the_initial_capacity_is_kept_when_the_queue_empties() {
        let mut queue = Queue::with_capacity(4);
        for _ in 0..4 {
            queue.push(task(), 0, Some(0));
        }
        assert_eq!(queue.extras.capacity(), 4, "grown up to the capacity");
        while queue.pop().is_some() {}
        assert_eq!(queue.extras.capacity(), 4);
    }

    #[test]
    fn matches_a_sorted_vector_model() {
        for seed in 1..=40u64 {
            let mut random = Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut queue = Queue::with_capacity(4);
            let mut model: Vec<Entry> = Vec::new();
            let mut promotions = 0u64;
            for _ in 0..600 {
                if random.below(60) == 0 {
                    let mut drained: Vec<u64> = queue
                        .drain()
                        .into_tasks()
                        .map(|task| task.id().as_u64())
                        .collect();
                    let mut expected: Vec<u64> = model.drain(..).map(|entry| entry.id).collect();
                    drained.sort_unstable();
                    expected.sort_unstable();
                    assert_eq!(drained, expected, "seed {seed}");
                    assert!(queue.lanes.is_empty() && queue.tiers.is_empty());
                    assert!(queue.pop().is_none(), "seed {seed}");
                }
                match random.below(10) {
                    0..=3 => {
                        let priority = [0, 0, 0, 1, -1, 5][random.below(6) as usize];
                        let tag = [None, Some(0), Some(1), Some(2)][random.below(4) as usize];
                        let task = task();
                        let header_id = |task: &Task| task.id().as_u64();
                        queue.push(task, priority, tag);
                        let key = queue
                            .nodes
                            .iter()
                            .map(|(key, _)| key)
                            .max_by_key(|&key| header_id(&queue.nodes[key].task));
                        let key = key.unwrap();
                        model.push(Entry {
                            id: header_id(&queue.nodes[key].task),
                            key,
                            priority,
                            tag,
                            promoted: None,
                        });
                    }
                    4 | 5 => {
                        let expected = sorted(&model).first().map(|entry| entry.id);
                        let popped = queue.pop().map(|(task, _)| task.id().as_u64());
                        assert_eq!(popped, expected, "seed {seed}");
                        model.retain(|entry| Some(entry.id) != expected);
                    }
                    6 if !model.is_empty() => {
                        let victim = model.remove(random.below(model.len() as u64) as usize);
                        let (task, _) = queue.remove(victim.key);
                        assert_eq!(task.id().as_u64(), victim.id);
                    }
                    7 | 8 => {
                        let tag = random.below(3) as usize;
                        promotions += 1;
                        let moving: Vec<u64> = sorted(&model)
                            .into_iter()
                            .filter(|entry| entry.tag == Some(tag))
                            .map(|entry| entry.id)
                            .collect();
                        for (position, id) in moving.iter().enumerate() {
                            let entry = model.iter_mut().find(|entry| entry.id == *id).unwrap();
                            entry.promoted = Some((promotions, position));
                        }
                        assert_eq!(queue.promote(tag), moving.len(), "seed {seed}");
                    }
                    _ => {
                        let tag = random.below(3) as usize;
                        let drained = queue.drain_tag(tag).len();
                        let before = model.len();
                        model.retain(|entry| entry.tag != Some(tag));
                        assert_eq!(drained, before - model.len(), "seed {seed}");
                    }
                }
                assert_eq!(queue.len(), model.len());
                for tag in 0..3 {
                    let expected = model.iter().filter(|entry| entry.tag == Some(tag)).count();
                    assert_eq!(queue.tag_len(tag), expected, "seed {seed}");
                }
            }
            // Whatever is left starts in the model's order.
            for expected in sorted(&model) {
                let (task, _) = queue.pop().unwrap();
                assert_eq!(task.id().as_u64(), expected.id, "seed {seed}");
            }
            assert!(queue.pop().is_none());
            assert!(queue.lanes.is_empty() && queue.tiers.is_empty());
        }
    }
}
