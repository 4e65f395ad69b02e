//! The dispatcher and the queue state machine, driven by hand on a manual clock.

use super::*;
