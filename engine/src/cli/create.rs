//! `seednode create`: a .torrent for a file or directory, without seeding it.

use std::path::PathBuf;

use seednode_wire::display::escape_path;

use super::torrent_file::{
    Plan, create_metainfo, create_options, magnet_of, open_storage, plan, verify_data,
    write_atomically,
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
            let storage = open_storage(&args.path, &meta, targs.symlinks.policy())?;
            let have = verify_data(&meta, &storage, targs.threads())?;
            let bad = have.iter().filter(|h| !**h).count();
            if bad > 0 {
                return Err(format!(
                    "{} already exists and does not match the data ({bad} of {} pieces differ); \
                     it is left as it is. Write the new torrent elsewhere with -o FILE, or \
                     replace it with --force",
                    escape_path(&out),
                    have.len()
                ));
            }
            eprintln!(
                "{} already exists and matches the data: kept as it is (--force rewrites it)",
                escape_path(&out)
            );
            (*meta, out)
        }
    };
    println!("info-hash: {}", meta.info_hash);
    println!("magnet: {}", magnet_of(&meta, None));
    println!("torrent: {}", escape_path(&out));
    Ok(out)
}
