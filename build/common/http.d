build/common/http.o: common/http.c common/http.h common/log.h
common/http.h:
common/log.h:
