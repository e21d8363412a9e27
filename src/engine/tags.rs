//! What a plan keeps about each tag it has seen: a small entry that lives as
//! long as the plan, with its index into the per-tag lists the queue keeps
//! and its lifetime counters for [`Plan::tag_stats`](crate::Plan::tag_stats).

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::counters::Outcomes;
use crate::tag::Tag;

/// What a tagged task's header shares with the plan about its tag.
pub(crate) struct TagInfo {
    /// Index of the tag's lists and counts in the plan's locked state.
    pub(crate) index: usize,
    pub(crate) name: Tag,
    /// Outcomes of this tag's tasks, counted as the plan's are.
    pub(crate) outcomes: Outcomes,
}

/// Every tag a plan has seen.
pub(crate) struct TagRegistry {
    by_name: HashMap<Tag, Arc<TagInfo>>,
    /// The plan's name, for the tags' published series.
    #[cfg(feature = "metrics")]
    plan: Box<str>,
}

impl TagRegistry {
    pub(crate) fn new(plan: &str) -> TagRegistry {
        #[cfg(not(feature = "metrics"))]
        let _ = plan;
        TagRegistry {
            by_name: HashMap::new(),
            #[cfg(feature = "metrics")]
            plan: plan.into(),
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<TagInfo>> {
        self.by_name.get(name)
    }

    pub(crate) fn get_or_insert(&mut self, name: Tag) -> Arc<TagInfo> {
        let index = self.by_name.len();
        Arc::clone(self.by_name.entry(name).or_insert_with_key(|name| {
            Arc::new(TagInfo {
                index,
                name: name.clone(),
                outcomes: Outcomes {
                    #[cfg(feature = "metrics")]
                    published: crate::engine::metrics::Published::for_tag(
                        &self.plan,
                        name.as_str(),
                    ),
                    ..Outcomes::default()
                },
            })
        }))
    }
}
