//! A guide to taskplan: the model, choosing sizes, cancellation, shutdown
//! and migrating from hand-rolled pools.
