//! Burn implementations of the UniLIP components, one file per architecture.

pub mod compose;
pub mod dcae;
pub mod edit_object;
pub mod flow_edit;
pub mod inpaint;
pub mod internvit;
pub mod latent_head;
pub mod layers;
pub mod locate;
pub mod preprocess;
pub mod qwen2;
pub mod regions;
pub mod relocate;
pub mod sana;
pub mod scheduler;
pub mod teacher_forcing;
pub mod tokenizer;
pub mod unilip;
