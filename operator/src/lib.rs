pub mod meshctl;
