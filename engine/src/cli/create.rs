//! `seednode create`: a .torrent for a file or directory, without seeding it.

use std::path::PathBuf;

use seednode_wire::display::escape_path;

use super::torrent_file::{
    Plan, create_metainfo, create_options, magnet_of, plan, verify_for_reuse, write_atomically,
};
use super::{CliError, CreateArgs};

/// Makes the torrent of `args.path` (or, like `seed`, keeps an existing one that matches the
/// data) and prints its info-hash, magnet link and path.
///
/// # Errors
/// As [`plan`], a failure to hash or write, or an existing .torrent whose pieces do not match.
pub(crate) fn create(args: &CreateArgs) -> Result<PathBuf, CliError> {
    let targs = &args.torrent_args;
    let (meta, out) = match plan(targs, &args.path)? {
        Plan::Create { out, survey } => {
            let opts = create_options(targs, &targs.trackers);
            let meta = create_metainfo(&args.path, &opts, &survey)?;
            write_atomically(&out, &meta.to_bytes())?;
            (meta, out)
        }
        Plan::Reuse { out, meta } => {
            verify_for_reuse(&args.path, &out, &meta, targs)?;
            eprintln!(
                "{} already exists and matches the data: kept as it is (--force rewrites it)",
                escape_path(&out)
            );
            (*meta, out)
        }
    };
    println!("info-hash: {}", meta.info_hash);
    println!("magnet: {}", magnet_of(&meta, &[]));
    println!("torrent: {}", escape_path(&out));
    Ok(out)
}
