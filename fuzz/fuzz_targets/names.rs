//! Backup names: any name that reads as a backup's writes back as itself and reads again the
//! same; what a folder walk reads of its time agrees with the full parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use metasystem_actors::sync::backup_name::BackupName;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(b) = name.parse::<BackupName>() {
        let shown = b.to_string();
        let again = shown.parse::<BackupName>().expect("a written name reads");
        assert_eq!(again, b, "{name} -> {shown}");
        assert_eq!(again.to_string(), shown);
        let file = shown.rsplit('/').next().unwrap_or(&shown);
        assert_eq!(BackupName::taken_from_file_name(file), Some(b.taken), "{shown}");
    }
    let _ = BackupName::taken_from_file_name(name);
    let _ = metasystem_actors::sync::backups::check_name(name);
});
