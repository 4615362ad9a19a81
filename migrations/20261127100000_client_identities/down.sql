DROP TABLE cons.client_identities;
