//! Rebuilds the crate when a migration is added, removed or changed: `embed_migrations!` embeds
//! the files it finds but does not tell Cargo to watch the folder, so a new migration directory
//! would otherwise be missing from the binary (and from the test template built from it).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
