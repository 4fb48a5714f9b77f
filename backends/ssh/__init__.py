"""SSH access shared by the remote targets (remote Docker now, a Spark head node later):
connection and host keys, secrets, sync. asyncssh is imported where it is used."""
