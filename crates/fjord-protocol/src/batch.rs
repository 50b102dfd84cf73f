//! Record batch (magic v2) views.
