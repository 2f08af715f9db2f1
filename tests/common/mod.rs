pub mod debrepo;
