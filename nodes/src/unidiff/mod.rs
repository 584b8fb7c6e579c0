//! UniDiff (arXiv 2306.00813, `spec/unidiff.md`) on the UniLIP stack: joint fine-tuning with
//! image–text contrastive (ITC), image synthesis (IS = flow matching) and reciprocal semantic
//! consistency (RSC) losses, and its retrieval / collapse evaluation.
//!
//! * [`loss`]: ITC and RSC on backend tensors;
//! * [`heads`]: the new parameters (projection heads, temperature, optional text tower);
//! * [`embed`]: image and caption embeddings of a model (with or without heads);
//! * [`retrieval`]: cosine ranking, Recall@K and the spread of embeddings on the host;
//! * [`eval`]: `unilip eval unidiff` on a ShapesWorld domain.

pub mod embed;
pub mod eval;

pub mod heads;
pub mod loss;
pub mod retrieval;

pub use loss::{info_nce, info_nce_scaled, l2_normalize, rsc_loss, RscMode};
pub use retrieval::{
    cosine_matrix, rank_top_k, recall_at_k, recall_at_k_matching, spread, transpose,
};
