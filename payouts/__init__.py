"""The payout batch stage and the Zengin 総合振込 format. No HTTP in here: the staff console and the CLI
call into it, and it reads and writes the database through connections it is given."""
