DROP TABLE username_holds;
