//! recommend() and the artifact bundle (work in progress: issue 4).
